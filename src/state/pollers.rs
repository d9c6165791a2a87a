//! The poller table: every load balancer that asks about this server (its address and the
//! `agent-send` profile it chose), what it was last told, and whether it is still owed
//! HAProxy's recovery words. Pure logic and the file format; `StateDir` does the locked I/O.
//!
//! The rule: a poller sent drain, maint or stopped, or never seen before, is owed `up ready`
//! on its normal replies until `replies` of them have counted and `seconds` have passed since
//! it was owed. Then bare `N%`, so drains an operator makes in HAProxy stay. A reply counts
//! only when it comes at least half the poller's usual interval (learned from its own polls)
//! after the last one that counted, so checks by hand from a load balancer's address, which
//! the agent cannot tell from its polls, cannot use up its recovery before it polls again
//! (docs/recovery.md, "Checks by hand").

use super::history::{self, Event};
use super::record::{BASE, FORGET_AFTER_MS, Poller, checksum};
use crate::config::Recovery;

/// At most this many pollers are kept; the least recently seen goes first.
pub const MAX_POLLERS: usize = 4096;
/// The most of a reply line kept for `status`.
const MAX_REPLY: usize = 128;
/// The table file's size limit: 4096 entries of at most ~300 bytes, with room to spare.
pub const MAX_TABLE_BYTES: u64 = 2 << 20;
/// Version 2 added each poller's usual interval and when its last counted reply went; a
/// version 1 table is started afresh (every poller owed), the safe direction.
const HEADER: &str = "lb-feedback pollers 2";
/// A gap between two polls longer than this is an absence (a reload, `disable agent`, a
/// network cut), not the poller's pace, and is not learned.
pub const MAX_INTERVAL_MS: u64 = 120_000;

/// Recovery words still owed to a poller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Owed {
    /// When it became owed: its last non-normal reply, its first poll, or a mode change.
    pub since_ms: u64,
    /// Normal replies with `up ready` that counted since.
    pub sent: u32,
    /// When the last one that counted went.
    pub counted_ms: Option<u64>,
}

impl Owed {
    /// Owed from `now_ms`, nothing counted yet.
    pub fn from(now_ms: u64) -> Owed {
        Owed {
            since_ms: now_ms,
            sent: 0,
            counted_ms: None,
        }
    }
}

/// The poller's usual interval after a poll `gap_ms` after its previous one, from what it was
/// (`0`: not known yet). It follows a slower pace quickly (half the way) and a faster one
/// slowly (a quarter of the way), so a few quick checks by hand shorten it only a little;
/// absences are not learned.
pub fn learn(interval_ms: u64, gap_ms: u64) -> u64 {
    match interval_ms {
        _ if gap_ms > MAX_INTERVAL_MS => interval_ms,
        0 => gap_ms,
        interval if gap_ms >= interval => interval + (gap_ms - interval) / 2,
        interval => interval - (interval - gap_ms) / 4,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub poller: Poller,
    pub last_seen_ms: u64,
    /// Its usual interval between polls, learned ([`learn`]); `0` until it has polled twice.
    pub interval_ms: u64,
    pub last_reply: String,
    pub owed: Option<Owed>,
}

/// What one poll did: whether the reply carries `up ready`, why, the line `line(recover)`
/// gave, the history event when what the poller is told changed, and how to take the poll
/// back if its reply turns out not to be delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Polled {
    pub recover: bool,
    pub why: String,
    pub line: String,
    pub event: Option<Event>,
    pub undo: Option<Undo>,
}

/// A normal reply's poll, to take back when the reply was not delivered: the poller's entry
/// before it (`None` when it was new) and the entry it wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undo {
    before: Option<Entry>,
    after: Entry,
}

/// How much recovery a poller is owed: both bounds must be met. `policy` `always` and
/// `never` override what normal replies carry; what is owed is kept all the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub policy: Recovery,
    pub replies: u32,
    pub seconds: u64,
}

/// What a reply is, for the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A percent: carries `up ready` when owed.
    Normal,
    /// drain, maint or stopped: HAProxy will need `ready`/`up` afterwards.
    NonNormal,
    /// `error:WHAT`: HAProxy logs it and changes nothing, so neither does the table.
    Error,
}

/// The rule applied to one poll. `owed` is the poller's state before (`None` inside
/// `Some(..)` for a known poller owed nothing; the outer `None` for a new poller) and
/// `interval_ms` its usual interval before this poll (`0`: unknown); returns whether this
/// reply carries `up ready`, the state after, and why, for `--explain`.
pub fn settle(
    before: Option<Option<Owed>>,
    kind: Kind,
    rule: Rule,
    interval_ms: u64,
    now_ms: u64,
) -> (bool, Option<Owed>, String) {
    let owed_before = before.unwrap_or(None);
    match (rule.policy, kind) {
        (Recovery::Always, Kind::Normal) => {
            let (_, owed, _) = owed_rule(before, kind, rule, interval_ms, now_ms);
            (true, owed, "recovery = always".into())
        }
        (Recovery::Never, Kind::Normal) => (false, owed_before, "recovery = never".into()),
        _ => owed_rule(before, kind, rule, interval_ms, now_ms),
    }
}

/// The rule of `recovery = window`, the default.
fn owed_rule(
    before: Option<Option<Owed>>,
    kind: Kind,
    rule: Rule,
    interval_ms: u64,
    now_ms: u64,
) -> (bool, Option<Owed>, String) {
    let fresh = Owed::from(now_ms);
    let how = match before {
        None => "new poller",
        Some(_) => "owed",
    };
    let owed = before.unwrap_or(Some(fresh));
    match kind {
        Kind::Error => (
            false,
            owed,
            "error reply: what this poller is owed does not change".into(),
        ),
        Kind::NonNormal => (
            false,
            Some(fresh),
            format!(
                "non-normal reply: `up ready` owed to this poller on its next {} normal replies and for at least {} s",
                rule.replies, rule.seconds
            ),
        ),
        Kind::Normal => match owed {
            None => (false, None, "this poller is owed no recovery words".into()),
            Some(mut owed) => {
                // A clock stepped back past the start would keep it owed for good.
                owed.since_ms = owed.since_ms.min(now_ms);
                let waited = now_ms - owed.since_ms;
                if owed.sent >= rule.replies && waited >= rule.seconds * 1000 {
                    let why = format!(
                        "recovery done: `up ready` sent {} times over {:.1} s",
                        owed.sent,
                        waited as f64 / 1000.0
                    );
                    return (false, None, why);
                }
                let after = owed.counted_ms.map(|at| now_ms.saturating_sub(at));
                let counts = after.is_none_or(|after| after >= interval_ms / 2);
                let uncounted = match (counts, after) {
                    (false, Some(after)) => format!(
                        ", not counted: {:.1} s after the last counted one, under half this poller's usual interval ({:.1} s)",
                        after as f64 / 1000.0,
                        interval_ms as f64 / 1000.0
                    ),
                    _ => String::new(),
                };
                if counts {
                    owed.sent = owed.sent.saturating_add(1);
                    owed.counted_ms = Some(now_ms);
                }
                let why = format!(
                    "{how}: `up ready`{uncounted}; {} of {} counted, {:.1} s of at least {} s since owed",
                    owed.sent,
                    rule.replies,
                    waited as f64 / 1000.0,
                    rule.seconds
                );
                (true, Some(owed), why)
            }
        },
    }
}

/// Why a poller table is not one lb-feedback wrote whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableProblem {
    NotUtf8,
    NoHeader,
    /// Version 1's header: started afresh, every poller owed.
    FormatOne,
    NotATable,
    Checksum,
    CutShort,
    /// The file's line number (the header is line 1).
    MalformedLine {
        line: usize,
    },
    /// The line of the poller being polled.
    MalformedPoller,
}

impl std::fmt::Display for TableProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableProblem::NotUtf8 => f.write_str("not UTF-8"),
            TableProblem::NoHeader => f.write_str("no header line"),
            TableProblem::FormatOne => f.write_str("format 1, from an older lb-feedback"),
            TableProblem::NotATable => f.write_str("not a poller table written by lb-feedback"),
            TableProblem::Checksum => f.write_str("checksum mismatch (cut short or edited)"),
            TableProblem::CutShort => f.write_str("the last line is cut short"),
            TableProblem::MalformedLine { line } => write!(f, "line {line} is malformed"),
            TableProblem::MalformedPoller => f.write_str("a poller's line is malformed"),
        }
    }
}

/// The table as its file's lines, in the order pollers were first seen. A probe touches one
/// line: it finds its poller's by prefix, parses that one, and splices the new one in; the
/// other lines are carried as they are (parsing and re-rendering all of them cost a probe
/// with 1,000 pollers 5.9 M instructions, docs/BENCHMARKS.md). All lines are parsed only
/// for `status`, `mode`, and when a new poller needs room.
#[derive(Clone, Debug)]
pub struct Table {
    /// The file's text: its header line (rewritten on render), then whole lines, each ending
    /// in `\n`, from `start` on. Kept as read, so a probe copies it neither in nor out.
    text: String,
    start: usize,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            text: "\n".into(),
            start: 1,
        }
    }
}

impl Table {
    /// A table read from its file. Anything that is not a whole table written by lb-feedback
    /// (cut short by a crash, edited, planted) is an error: the caller starts afresh, which
    /// makes every poller new and so owed, the safe direction.
    pub fn parse(bytes: Vec<u8>) -> Result<Table, TableProblem> {
        let text = String::from_utf8(bytes).map_err(|_| TableProblem::NotUtf8)?;
        let (header, body) = text.split_once('\n').ok_or(TableProblem::NoHeader)?;
        if header.starts_with("lb-feedback pollers 1 ") {
            return Err(TableProblem::FormatOne);
        }
        let check = header
            .strip_prefix(HEADER)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .ok_or(TableProblem::NotATable)?;
        if check != checksum(body.as_bytes()) {
            return Err(TableProblem::Checksum);
        }
        if !(body.is_empty() || body.ends_with('\n')) {
            return Err(TableProblem::CutShort);
        }
        let start = header.len() + 1;
        Ok(Table { text, start })
    }

    fn body(&self) -> &str {
        &self.text[self.start..]
    }

    /// The file's content in two parts, the new header and the lines, to be written one after
    /// the other.
    pub fn render(&self) -> (String, &[u8]) {
        let body = self.body().as_bytes();
        (format!("{HEADER} {:016x}\n", checksum(body)), body)
    }

    /// Every entry; an error names the first malformed line.
    pub fn entries(&self) -> Result<Vec<Entry>, TableProblem> {
        self.body()
            .lines()
            .enumerate()
            .map(|(i, line)| parse_entry(line).ok_or(TableProblem::MalformedLine { line: i + 2 }))
            .collect()
    }

    fn set_entries(&mut self, entries: &[Entry]) {
        self.text.truncate(self.start);
        for entry in entries {
            self.text.push_str(&render_entry(entry));
        }
    }

    /// The entry of `poller` and where its line is in `text`; `Err` when that line is
    /// malformed. One substring search over the text (the newline before each line, the
    /// header's for the first, is part of what is searched for).
    fn locate(
        &self,
        poller: &Poller,
    ) -> Result<Option<(std::ops::Range<usize>, Entry)>, TableProblem> {
        let needle = format!(
            "\n{} {} ",
            poller.peer,
            poller.profile.as_deref().unwrap_or(BASE)
        );
        let from = self.start - 1;
        let Some(found) = self.text[from..].find(&needle) else {
            return Ok(None);
        };
        let line_start = from + found + 1;
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |end| line_start + end + 1);
        match parse_entry(self.text[line_start..line_end].trim_end_matches('\n')) {
            Some(entry) => Ok(Some((line_start..line_end, entry))),
            None => Err(TableProblem::MalformedPoller),
        }
    }

    /// Applies the rule to one poll and records it. `Err` when the poller's line is malformed
    /// (the caller starts afresh).
    pub fn poll(
        &mut self,
        poller: &Poller,
        kind: Kind,
        rule: Rule,
        now_ms: u64,
        line: &dyn Fn(bool) -> String,
    ) -> Result<Polled, TableProblem> {
        let found = self.locate(poller)?;
        // Not seen for a day: forgotten, so new (its line goes when the table needs room).
        let known = found
            .as_ref()
            .map(|(_, e)| e)
            .filter(|e| now_ms.saturating_sub(e.last_seen_ms) < FORGET_AFTER_MS);
        let before = known.map(|e| e.owed);
        let interval_ms = known.map_or(0, |e| e.interval_ms);
        let (recover, owed, why) = settle(before, kind, rule, interval_ms, now_ms);
        let sent = line(recover);
        let told = found
            .as_ref()
            .filter(|_| before.is_some())
            .map(|(_, e)| e.last_reply.as_str());
        let event = history::change(poller, told, &sent, now_ms);
        let entry = Entry {
            poller: poller.clone(),
            last_seen_ms: now_ms,
            interval_ms: known.map_or(0, |e| {
                learn(e.interval_ms, now_ms.saturating_sub(e.last_seen_ms))
            }),
            last_reply: reply_text(&sent),
            owed,
        };
        // Only a normal reply is taken back when it is not delivered: a non-normal one makes
        // the poller owed, the safe direction whether it arrived or not.
        let undo = (kind == Kind::Normal).then(|| Undo {
            before: found.as_ref().map(|(_, e)| e.clone()),
            after: entry.clone(),
        });
        match found {
            Some((range, _)) => self.text.replace_range(range, &render_entry(&entry)),
            None => self.add(entry, now_ms)?,
        }
        Ok(Polled {
            recover,
            why,
            line: sent,
            event,
            undo,
        })
    }

    /// Takes back a poll whose reply was not delivered: the poller's line goes back to what
    /// it was (or goes, for a poller first seen then), unless another poll changed it since.
    /// Returns whether it was taken back.
    pub fn undo(&mut self, undo: &Undo) -> Result<bool, TableProblem> {
        let Some((range, entry)) = self.locate(&undo.after.poller)? else {
            return Ok(false);
        };
        if entry != undo.after {
            return Ok(false);
        }
        let line = undo.before.as_ref().map(render_entry).unwrap_or_default();
        self.text.replace_range(range, &line);
        Ok(true)
    }

    /// A new poller's line; makes room first: pollers not seen for a day go, then the least
    /// recently seen while the table is full.
    fn add(&mut self, entry: Entry, now_ms: u64) -> Result<(), TableProblem> {
        let full = self.body().bytes().filter(|b| *b == b'\n').count() >= MAX_POLLERS;
        if full {
            let mut entries = self.entries()?;
            entries.retain(|e| now_ms.saturating_sub(e.last_seen_ms) < FORGET_AFTER_MS);
            while entries.len() >= MAX_POLLERS {
                let oldest = (0..entries.len()).min_by_key(|i| entries[*i].last_seen_ms);
                entries.remove(oldest.unwrap_or(0));
            }
            self.set_entries(&entries);
        }
        self.text.push_str(&render_entry(&entry));
        Ok(())
    }

    /// Every known poller is owed recovery from now: after `lb-feedback mode`, whatever it was
    /// told before.
    pub fn owe_all(&mut self, now_ms: u64) -> Result<(), TableProblem> {
        let mut entries = self.entries()?;
        for entry in &mut entries {
            entry.owed = Some(Owed::from(now_ms));
        }
        self.set_entries(&entries);
        Ok(())
    }
}

fn render_entry(entry: &Entry) -> String {
    let owed = match entry.owed {
        Some(owed) => {
            let counted = owed.counted_ms.map_or("-".into(), |at| at.to_string());
            format!("{} {} {counted}", owed.since_ms, owed.sent)
        }
        None => "- 0 -".into(),
    };
    format!(
        "{} {} {} {} {owed} {}\n",
        entry.poller.peer,
        entry.poller.profile.as_deref().unwrap_or(BASE),
        entry.last_seen_ms,
        entry.interval_ms,
        entry.last_reply
    )
}

/// The reply as `status` shows it: one line, printable, bounded.
fn reply_text(line: &str) -> String {
    line.trim_end()
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .take(MAX_REPLY)
        .collect()
}

fn parse_entry(line: &str) -> Option<Entry> {
    let mut fields = line.splitn(8, ' ');
    let peer = fields.next()?;
    if peer != "unknown" && peer.parse::<std::net::IpAddr>().is_err() {
        return None;
    }
    let profile = match fields.next()? {
        BASE => None,
        name if crate::config::ProfileName::valid(name) => Some(name.to_string()),
        _ => return None,
    };
    let last_seen_ms = fields.next()?.parse().ok()?;
    let interval_ms = fields.next()?.parse().ok()?;
    let since = fields.next()?;
    let sent: u32 = fields.next()?.parse().ok()?;
    let counted_ms = match fields.next()? {
        "-" => None,
        at => Some(at.parse().ok()?),
    };
    let owed = match since {
        "-" => None,
        since => Some(Owed {
            since_ms: since.parse().ok()?,
            sent,
            counted_ms,
        }),
    };
    let last_reply = fields.next()?;
    if last_reply.len() > MAX_REPLY || !last_reply.chars().all(|c| c == ' ' || c.is_ascii_graphic())
    {
        return None;
    }
    Some(Entry {
        poller: Poller {
            peer: peer.to_string(),
            profile,
        },
        last_seen_ms,
        interval_ms,
        last_reply: last_reply.to_string(),
        owed,
    })
}

#[cfg(test)]
impl Table {
    fn find(&self, poller: &Poller) -> Option<Entry> {
        self.locate(poller).ok().flatten().map(|(_, entry)| entry)
    }
}

#[cfg(test)]
mod tests;
