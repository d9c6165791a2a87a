//! The history of what the agent told its pollers: a bounded ring of changes (a poller's reply
//! going from normal to drain and back, to an error and back, a first poll, a mode set with
//! `lb-feedback mode`), kept in the state directory beside the poller table and appended to
//! under its lock, only when something changed: nothing in steady state.

use std::fmt;

use super::record::{BASE, Poller, checksum};
use crate::config::Mode;

/// The ring keeps the last this many events.
pub const MAX_EVENTS: usize = 500;
/// The file's size limit: 500 lines of at most ~400 bytes, with room to spare.
pub const MAX_HISTORY_BYTES: u64 = 256 << 10;
const HEADER: &str = "lb-feedback history 1";
/// The file's peer column for a mode change: no address reads so.
const MODE_PEER: &str = "mode";
/// The file's `from` for a first poll, and for a mode change whose mode before could not be
/// read.
const NEW: &str = "new";
const UNKNOWN: &str = "unknown";

/// One change of what the agent says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at_ms: u64,
    pub change: Change,
    /// The reply's reason (`tcp:3389:96>=95`, `mode`), or for a mode change how it was set.
    pub why: String,
}

/// Who changed, and from what to what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// What one poller is told; `from` is `None` for its first poll.
    Poller {
        poller: Poller,
        from: Option<Told>,
        to: Told,
    },
    /// The runtime mode, set with `lb-feedback mode`; `from` is `None` when the mode before
    /// could not be read.
    Mode { from: Option<Mode>, to: Mode },
}

/// What a reply line tells a poller, as history compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Told {
    Normal,
    Drain,
    Maint,
    Stopped,
    /// `error:WORD`: the word (a built-in one or a custom monitor's name).
    Error(String),
}

impl Told {
    /// The file's word: what the reply line starts with (`normal` for a percent).
    fn parse(word: &str) -> Option<Told> {
        match word {
            "normal" => Some(Told::Normal),
            "drain" => Some(Told::Drain),
            "maint" => Some(Told::Maint),
            "stopped" => Some(Told::Stopped),
            word => {
                let what = word.strip_prefix("error:")?;
                (!what.is_empty()).then(|| Told::Error(what.to_string()))
            }
        }
    }
}

impl fmt::Display for Told {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Told::Normal => f.write_str("normal"),
            Told::Drain => f.write_str("drain"),
            Told::Maint => f.write_str("maint"),
            Told::Stopped => f.write_str("stopped"),
            Told::Error(what) => write!(f, "error:{what}"),
        }
    }
}

impl Event {
    /// The poller's address, or `mode` for a mode change.
    pub fn peer(&self) -> &str {
        match &self.change {
            Change::Poller { poller, .. } => &poller.peer,
            Change::Mode { .. } => MODE_PEER,
        }
    }

    /// The poller's profile, `None` for the base config (and for mode changes).
    pub fn profile(&self) -> Option<&str> {
        match &self.change {
            Change::Poller { poller, .. } => poller.profile.as_deref(),
            Change::Mode { .. } => None,
        }
    }

    /// What was said before, as the file and `status` write it: `new` for a first poll.
    pub fn from_word(&self) -> String {
        match &self.change {
            Change::Poller {
                from: Some(told), ..
            } => told.to_string(),
            Change::Poller { from: None, .. } => NEW.into(),
            Change::Mode {
                from: Some(mode), ..
            } => mode.name().into(),
            Change::Mode { from: None, .. } => UNKNOWN.into(),
        }
    }

    /// What is said now, as the file and `status` write it.
    pub fn to_word(&self) -> String {
        match &self.change {
            Change::Poller { to, .. } => to.to_string(),
            Change::Mode { to, .. } => to.name().into(),
        }
    }

    /// Who, as people read it: `10.0.0.1 web`, `10.0.0.1 (base)`, `mode`.
    pub fn who(&self) -> String {
        match (&self.change, self.profile()) {
            (Change::Mode { .. }, _) => MODE_PEER.into(),
            (_, Some(profile)) => format!("{} {profile}", self.peer()),
            (_, None) => format!("{} (base)", self.peer()),
        }
    }
}

impl fmt::Display for Event {
    /// `10.0.0.1 web: normal -> drain (tcp:3389:96>=95)`, as logs show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {}",
            self.who(),
            self.from_word(),
            self.to_word()
        )?;
        match self.why.as_str() {
            "" => Ok(()),
            why => write!(f, " ({why})"),
        }
    }
}

/// `status --json` shows an event with the file's fields.
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Event", 6)?;
        out.serialize_field("at_ms", &self.at_ms)?;
        out.serialize_field("peer", self.peer())?;
        out.serialize_field("profile", &self.profile())?;
        out.serialize_field("from", &self.from_word())?;
        out.serialize_field("to", &self.to_word())?;
        out.serialize_field("why", &self.why)?;
        out.end()
    }
}

/// What a reply line says, as history compares it: what it tells and its reason. Drains by a
/// threshold differ by monitor, not by figure or wording, so a load moving within a drain, or
/// a held drain flipping between its threshold and its release, is no event.
pub fn state_of(line: &str) -> (Told, String) {
    let line = line.trim_end();
    if let Some(what) = line.strip_prefix("error:") {
        let what = what.split(' ').next().unwrap_or(what);
        return (Told::Error(what.to_string()), String::new());
    }
    match line.split_once(" #") {
        Some((words, reason)) => {
            let told = match words.split(' ').next().unwrap_or(words) {
                "maint" => Told::Maint,
                "stopped" => Told::Stopped,
                // The only other word a reply puts before its reason.
                _ => Told::Drain,
            };
            (told, reason.to_string())
        }
        None => (Told::Normal, String::new()),
    }
}

/// The monitor a reason names: `tcp:3389` of `tcp:3389:96>=95` (its threshold) and of
/// `tcp:3389:90>85(release)` (its release), `mode` of `mode`.
fn monitor_of(reason: &str) -> &str {
    match reason.rsplit_once(':') {
        Some((monitor, figures)) if figures.contains('>') => monitor,
        _ => reason,
    }
}

/// The event a reply makes, if it changes what the poller was told. `before`: the last reply
/// line it was sent, `None` for a new poller.
pub fn change(poller: &Poller, before: Option<&str>, now: &str, at_ms: u64) -> Option<Event> {
    let (to, why) = state_of(now);
    let from = match before {
        None => None,
        Some(before) => {
            let (from, was) = state_of(before);
            if from == to && monitor_of(&was) == monitor_of(&why) {
                return None;
            }
            Some(from)
        }
    };
    Some(Event {
        at_ms,
        change: Change::Poller {
            poller: poller.clone(),
            from,
            to,
        },
        why,
    })
}

/// The header's count and the lines after it, when the file is a whole ring written by
/// lb-feedback; `None` otherwise (history is for people: losing it costs a record, never a
/// reply).
fn checked(bytes: &[u8]) -> Option<(usize, &str)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (header, body) = text.split_once('\n')?;
    let mut fields = header.strip_prefix(HEADER)?.strip_prefix(' ')?.split(' ');
    let count = fields.next()?.parse().ok()?;
    let check = u64::from_str_radix(fields.next()?, 16).ok()?;
    (check == checksum(body.as_bytes()) && (body.is_empty() || body.ends_with('\n')))
        .then_some((count, body))
}

/// The ring as read from its file, oldest first; an empty one when it does not check out.
pub fn parse(bytes: &[u8]) -> Vec<Event> {
    checked(bytes)
        .map(|(_, body)| body.lines().filter_map(parse_event).collect())
        .unwrap_or_default()
}

/// The file's new bytes: `event` appended to the ring in `bytes`, the oldest lines dropped
/// past [`MAX_EVENTS`]. The lines already there are carried as they are, not parsed (parsing
/// and rendering a full ring cost a change 3.9 M instructions, docs/BENCHMARKS.md); the
/// header keeps their count.
pub fn append(bytes: &[u8], event: &Event) -> Vec<u8> {
    let (mut count, old) = checked(bytes).unwrap_or((0, ""));
    let mut body = old;
    while count >= MAX_EVENTS {
        body = body.split_once('\n').map_or("", |(_, rest)| rest);
        count -= 1;
    }
    let line = render_event(event);
    let mut new = String::with_capacity(body.len() + line.len());
    new.push_str(body);
    new.push_str(&line);
    let header = format!("{HEADER} {} {:016x}\n", count + 1, checksum(new.as_bytes()));
    [header.as_bytes(), new.as_bytes()].concat()
}

/// Tab-separated: no field holds a tab (reply text is printable ASCII and spaces).
fn render_event(event: &Event) -> String {
    let clean = |text: &str| text.replace(['\t', '\n'], " ");
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\n",
        event.at_ms,
        clean(event.peer()),
        event.profile().unwrap_or(BASE),
        clean(&event.from_word()),
        clean(&event.to_word()),
        clean(&event.why)
    )
}

fn parse_event(line: &str) -> Option<Event> {
    let mut fields = line.split('\t');
    let at_ms = fields.next()?.parse().ok()?;
    let peer = fields.next()?;
    let profile = match fields.next()? {
        BASE => None,
        name => Some(name.to_string()),
    };
    let (from, to, why) = (fields.next()?, fields.next()?, fields.next()?);
    let printable =
        |text: &str| text.len() <= 256 && text.chars().all(|c| c == ' ' || c.is_ascii_graphic());
    if fields.next().is_some() || ![peer, from, to, why].iter().all(|t| printable(t)) {
        return None;
    }
    let change = match (peer, profile) {
        (MODE_PEER, None) => Change::Mode {
            from: match from {
                UNKNOWN => None,
                mode => Some(mode_named(mode)?),
            },
            to: mode_named(to)?,
        },
        (MODE_PEER, Some(_)) => return None,
        (peer, profile) => Change::Poller {
            poller: Poller {
                peer: peer.to_string(),
                profile,
            },
            from: match from {
                NEW => None,
                told => Some(Told::parse(told)?),
            },
            to: Told::parse(to)?,
        },
    };
    Some(Event {
        at_ms,
        change,
        why: why.to_string(),
    })
}

/// The mode whose [`Mode::name`] is `name`, as the file writes it.
fn mode_named(name: &str) -> Option<Mode> {
    [Mode::Normal, Mode::Drain, Mode::Maint, Mode::Stop]
        .into_iter()
        .find(|mode| mode.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poller() -> Poller {
        Poller::new(Some("10.0.0.1".parse().unwrap()), Some("web"))
    }

    #[test]
    fn states_and_reasons_of_reply_lines() {
        assert_eq!(state_of("87%\n"), (Told::Normal, "".into()));
        assert_eq!(
            state_of("up ready 87% maxconn:5\n"),
            (Told::Normal, "".into())
        );
        assert_eq!(
            state_of("drain maxconn:5 #tcp:3389:96>=95\n"),
            (Told::Drain, "tcp:3389:96>=95".into())
        );
        assert_eq!(state_of("maint #mode"), (Told::Maint, "mode".into()));
        assert_eq!(
            state_of("error:cpu\n"),
            (Told::Error("cpu".into()), "".into())
        );
    }

    #[test]
    fn changes_only() {
        let p = poller();
        let first = change(&p, None, "up ready 90%\n", 1).unwrap();
        assert_eq!(
            (first.from_word().as_str(), first.to_word().as_str()),
            ("new", "normal")
        );
        assert!(change(&p, Some("up ready 90%"), "80%\n", 2).is_none());
        let drain = change(&p, Some("80%"), "drain #tcp:3389:96>=95\n", 3).unwrap();
        assert_eq!(
            (drain.from_word().as_str(), drain.to_word().as_str()),
            ("normal", "drain")
        );
        assert_eq!(drain.why, "tcp:3389:96>=95");
        // The same monitor with another figure is the same drain; another reason is not.
        assert!(
            change(
                &p,
                Some("drain #tcp:3389:96>=95"),
                "drain #tcp:3389:99>=95",
                4
            )
            .is_none()
        );
        assert!(change(&p, Some("drain #tcp:3389:99>=95"), "drain #mode", 5).is_some());
        // A drain held by hysteresis is the same drain whether its figure is over the
        // threshold or between it and the release: the wording flips, the state does not.
        let held = "drain #tcp:3389:90>85(release)";
        assert!(change(&p, Some("drain #tcp:3389:100>=95"), held, 5).is_none());
        assert!(change(&p, Some(held), "drain #tcp:3389:100>=95", 5).is_none());
        assert!(change(&p, Some(held), "drain #tcp:3390:100>=95", 5).is_some());
        assert!(change(&p, Some(held), "drain #ram:91.3>=90.5", 5).is_some());
        assert!(change(&p, Some("drain #mode"), "error:ram", 6).is_some());
        assert!(change(&p, Some("error:ram"), "error:ram", 7).is_none());
        let back = change(&p, Some("error:ram"), "up ready 70%", 8).unwrap();
        assert_eq!(
            (back.from_word().as_str(), back.to_word().as_str()),
            ("error:ram", "normal")
        );
    }

    #[test]
    fn the_ring_round_trips_and_keeps_the_last_events() {
        let p = poller();
        let mut bytes = Vec::new();
        for i in 0..MAX_EVENTS as u64 + 20 {
            bytes = append(&bytes, &change(&p, None, "drain #mode", i).unwrap());
        }
        let ring = parse(&bytes);
        assert_eq!(ring.len(), MAX_EVENTS);
        assert_eq!(ring[0].at_ms, 20);
        assert_eq!(ring.last().unwrap().profile(), Some("web"));
        // Torn or forged: an empty ring, never a wrong one.
        assert!(parse(&bytes[..bytes.len() - 5]).is_empty());
        assert!(parse(b"garbage").is_empty());
        let more = append(&bytes, &change(&p, None, "80%", 9_999).unwrap());
        let ring = parse(&more);
        assert_eq!((ring.len(), ring[0].at_ms), (MAX_EVENTS, 21));
        assert_eq!(ring.last().unwrap().at_ms, 9_999);
        // A damaged ring starts again with the new event.
        let fresh = append(b"garbage", &change(&p, None, "80%", 1).unwrap());
        assert_eq!(parse(&fresh).len(), 1);
    }

    #[test]
    fn the_files_lines_read_typed_and_render_back_byte_for_byte() {
        let body = "1\t10.0.0.1\tweb\tnew\tnormal\t\n\
                    2\tmode\t*\tunknown\tmaint\tlb-feedback mode maint until changed\n\
                    3\t::1\t*\tdrain\terror:cpu\t\n\
                    4\tmode\t*\tmaint\tnormal\tlb-feedback mode reset\n";
        let file = format!("{HEADER} 4 {:016x}\n{body}", checksum(body.as_bytes()));
        let ring = parse(file.as_bytes());
        assert_eq!(
            ring[1].change,
            Change::Mode {
                from: None,
                to: Mode::Maint
            }
        );
        assert_eq!(
            ring[2].change,
            Change::Poller {
                poller: Poller::new(Some("::1".parse().unwrap()), None),
                from: Some(Told::Drain),
                to: Told::Error("cpu".into()),
            }
        );
        let rendered: String = ring.iter().map(render_event).collect();
        assert_eq!(rendered, body);
        assert_eq!(
            ring[3].to_string(),
            "mode: maint -> normal (lb-feedback mode reset)"
        );
        // A word lb-feedback never writes is no event.
        for line in [
            "5\t10.0.0.1\t*\tnew\tsideways\t\n",
            "5\tmode\tweb\tnormal\tdrain\t\n",
        ] {
            assert_eq!(parse_event(line.trim_end()), None, "{line}");
        }
    }
}
