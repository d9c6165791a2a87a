//! The history of what the agent told its pollers: a bounded ring of changes (a poller's reply
//! going from normal to drain and back, to an error and back, a first poll, a mode set with
//! `lb-feedback mode`), kept in the state directory beside the poller table and appended to
//! under its lock, only when something changed: nothing in steady state.

use super::record::{BASE, Poller, checksum};

/// The ring keeps the last this many events.
pub const MAX_EVENTS: usize = 500;
/// The file's size limit: 500 lines of at most ~400 bytes, with room to spare.
pub const MAX_HISTORY_BYTES: u64 = 256 << 10;
const HEADER: &str = "lb-feedback history 1";

/// One change of what the agent says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    pub at_ms: u64,
    /// The poller's address, or `mode` for a change made with `lb-feedback mode`.
    pub peer: String,
    /// The poller's profile, `None` for the base config (and for mode changes).
    pub profile: Option<String>,
    /// What it was told before (`new` for a first poll) and now: `normal`, `drain`, `maint`,
    /// `stopped` or `error:WHAT`; for a mode change, the modes.
    pub from: String,
    pub to: String,
    /// The reply's reason (`tcp:3389:96>=95`, `mode`), or for a mode change how it was set.
    pub why: String,
}

impl std::fmt::Display for Event {
    /// `10.0.0.1 web: normal -> drain (tcp:3389:96>=95)`, as logs show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.profile, self.peer.as_str()) {
            (_, "mode") => write!(f, "mode: ")?,
            (Some(profile), peer) => write!(f, "{peer} {profile}: ")?,
            (None, peer) => write!(f, "{peer} (base): ")?,
        }
        write!(f, "{} -> {}", self.from, self.to)?;
        match self.why.as_str() {
            "" => Ok(()),
            why => write!(f, " ({why})"),
        }
    }
}

/// What a reply line says, as history compares it: its state and its reason. Drains by a
/// threshold differ by monitor, not by figure or wording, so a load moving within a drain, or
/// a held drain flipping between its threshold and its release, is no event.
pub fn state_of(line: &str) -> (String, String) {
    let line = line.trim_end();
    if line.starts_with("error:") {
        return (
            line.split(' ').next().unwrap_or(line).to_string(),
            String::new(),
        );
    }
    match line.split_once(" #") {
        Some((words, reason)) => {
            let word = words.split(' ').next().unwrap_or(words);
            (word.to_string(), reason.to_string())
        }
        None => ("normal".into(), String::new()),
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
        None => "new".to_string(),
        Some(before) => {
            let (from, was) = state_of(before);
            if from == to && monitor_of(&was) == monitor_of(&why) {
                return None;
            }
            from
        }
    };
    Some(Event {
        at_ms,
        peer: poller.peer.clone(),
        profile: poller.profile.clone(),
        from,
        to,
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
        clean(&event.peer),
        event.profile.as_deref().unwrap_or(BASE),
        clean(&event.from),
        clean(&event.to),
        clean(&event.why)
    )
}

fn parse_event(line: &str) -> Option<Event> {
    let mut fields = line.split('\t');
    let at_ms = fields.next()?.parse().ok()?;
    let peer = fields.next()?.to_string();
    let profile = match fields.next()? {
        BASE => None,
        name => Some(name.to_string()),
    };
    let (from, to, why) = (fields.next()?, fields.next()?, fields.next()?);
    let printable =
        |text: &str| text.len() <= 256 && text.chars().all(|c| c == ' ' || c.is_ascii_graphic());
    if fields.next().is_some() || ![&peer, from, to, why].iter().all(|t| printable(t)) {
        return None;
    }
    Some(Event {
        at_ms,
        peer,
        profile,
        from: from.to_string(),
        to: to.to_string(),
        why: why.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poller() -> Poller {
        Poller::new(Some("10.0.0.1".parse().unwrap()), Some("web"))
    }

    #[test]
    fn states_and_reasons_of_reply_lines() {
        assert_eq!(state_of("87%\n"), ("normal".into(), "".into()));
        assert_eq!(
            state_of("up ready 87% maxconn:5\n"),
            ("normal".into(), "".into())
        );
        assert_eq!(
            state_of("drain maxconn:5 #tcp:3389:96>=95\n"),
            ("drain".into(), "tcp:3389:96>=95".into())
        );
        assert_eq!(state_of("maint #mode"), ("maint".into(), "mode".into()));
        assert_eq!(state_of("error:cpu\n"), ("error:cpu".into(), "".into()));
    }

    #[test]
    fn changes_only() {
        let p = poller();
        let first = change(&p, None, "up ready 90%\n", 1).unwrap();
        assert_eq!((first.from.as_str(), first.to.as_str()), ("new", "normal"));
        assert!(change(&p, Some("up ready 90%"), "80%\n", 2).is_none());
        let drain = change(&p, Some("80%"), "drain #tcp:3389:96>=95\n", 3).unwrap();
        assert_eq!(
            (drain.from.as_str(), drain.to.as_str()),
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
            (back.from.as_str(), back.to.as_str()),
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
        assert_eq!(ring.last().unwrap().profile.as_deref(), Some("web"));
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
}
