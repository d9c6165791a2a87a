//! The steady-steering memory (file `steady`): per profile and monitor, the moving average of
//! its load and whether it holds a drain, so that one-shot probes, each a process of its own,
//! share them. Pure: parsed from and rendered to bytes; `StateDir::steady` does the I/O.
//!
//! Format: a header `lb-feedback-steady 1 COUNT CHECK` (CHECK the checksum of the rest, in 16
//! hex digits), then one line per entry, `PROFILE MONITOR AT_MS AVERAGE HOLDING`: the profile
//! (`*` for the base config), the monitor (`cpu`, `tcp:3389`), when the average was last
//! moved, the average in thousandths of a percent, and 1 when it holds a drain. A file that
//! does not check out (cut short by a crash, edited) is started afresh: it costs a moving
//! average its past and lets go of a held drain, never the reply.

use super::record::{FORGET_AFTER_MS, checksum};

const MAGIC: &str = "lb-feedback-steady 1";

/// At most this many entries (profiles × monitors); the least recently updated goes first.
pub const MAX_ENTRIES: usize = 4096;

/// Bounds the read: 4,096 lines of at most 64 + 64 + 60 bytes, with room to spare.
pub const MAX_STEADY_BYTES: u64 = 1 << 20;

/// Why a steady file is started afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteadyProblem {
    NotUtf8,
    NoHeader,
    NotSteady,
    BadCount,
    Checksum,
    MalformedLine,
    CountMismatch,
}

impl std::fmt::Display for SteadyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SteadyProblem::NotUtf8 => "not UTF-8 text",
            SteadyProblem::NoHeader => "no header line",
            SteadyProblem::NotSteady => "not a steady-steering file (its header)",
            SteadyProblem::BadCount => "a bad count in the header",
            SteadyProblem::Checksum => "its checksum does not match: cut short or edited",
            SteadyProblem::MalformedLine => "a malformed line",
            SteadyProblem::CountMismatch => "its count does not match its lines",
        })
    }
}

/// What is kept of one monitor of one profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// When `average` was last moved, ms since the epoch.
    pub at_ms: u64,
    pub average: f64,
    pub holding: bool,
}

/// The whole memory, in the file's order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    entries: Vec<(String, String, Entry)>,
}

/// The name `profile` is kept under: `*` for the base config.
fn key(profile: Option<&str>) -> &str {
    profile.unwrap_or("*")
}

impl Table {
    pub fn get(&self, profile: Option<&str>, monitor: &str) -> Option<Entry> {
        let profile = key(profile);
        self.entries
            .iter()
            .find(|(p, m, _)| p == profile && m == monitor)
            .map(|(_, _, entry)| *entry)
    }

    /// Records `entry`; forgets entries not updated for a day, and the least recently
    /// updated one when the table is full.
    pub fn set(&mut self, profile: Option<&str>, monitor: &str, entry: Entry) {
        let profile = key(profile);
        let now = entry.at_ms;
        self.entries
            .retain(|(_, _, e)| e.at_ms <= now && now - e.at_ms < FORGET_AFTER_MS);
        match self
            .entries
            .iter_mut()
            .find(|(p, m, _)| p == profile && m == monitor)
        {
            Some((_, _, old)) => *old = entry,
            None => {
                if self.entries.len() >= MAX_ENTRIES
                    && let Some(oldest) =
                        (0..self.entries.len()).min_by_key(|&i| self.entries[i].2.at_ms)
                {
                    self.entries.remove(oldest);
                }
                self.entries
                    .push((profile.to_string(), monitor.to_string(), entry));
            }
        }
    }

    /// Every entry: its profile (`None` for the base config), monitor and what is kept.
    pub fn entries(&self) -> impl Iterator<Item = (Option<&str>, &str, Entry)> {
        self.entries.iter().map(|(profile, monitor, entry)| {
            let profile = (profile != "*").then_some(profile.as_str());
            (profile, monitor.as_str(), *entry)
        })
    }

    pub fn render(&self) -> Vec<u8> {
        let mut body = String::new();
        for (profile, monitor, entry) in &self.entries {
            let average = (entry.average * 1000.0).round() as u64;
            let holding = u8::from(entry.holding);
            body.push_str(&format!(
                "{profile} {monitor} {} {average} {holding}\n",
                entry.at_ms
            ));
        }
        let header = format!(
            "{MAGIC} {} {:016x}\n",
            self.entries.len(),
            checksum(body.as_bytes())
        );
        [header.into_bytes(), body.into_bytes()].concat()
    }

    /// The table the bytes hold; an empty file is an empty table.
    pub fn parse(bytes: &[u8]) -> Result<Table, SteadyProblem> {
        if bytes.is_empty() {
            return Ok(Table::default());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SteadyProblem::NotUtf8)?;
        let (header, body) = text.split_once('\n').ok_or(SteadyProblem::NoHeader)?;
        let (count, check) = header
            .strip_prefix(MAGIC)
            .and_then(|rest| rest.trim_start().split_once(' '))
            .ok_or(SteadyProblem::NotSteady)?;
        let count: usize = count.parse().map_err(|_| SteadyProblem::BadCount)?;
        if u64::from_str_radix(check, 16) != Ok(checksum(body.as_bytes())) {
            return Err(SteadyProblem::Checksum);
        }
        let entries = body
            .lines()
            .map(parse_line)
            .collect::<Option<Vec<_>>>()
            .ok_or(SteadyProblem::MalformedLine)?;
        if entries.len() != count || count > MAX_ENTRIES {
            return Err(SteadyProblem::CountMismatch);
        }
        Ok(Table { entries })
    }
}

fn parse_line(line: &str) -> Option<(String, String, Entry)> {
    let mut fields = line.split(' ');
    let (profile, monitor) = (fields.next()?, fields.next()?);
    let at_ms: u64 = fields.next()?.parse().ok()?;
    let average: u64 = fields.next()?.parse().ok()?;
    let holding = match fields.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let name =
        |text: &str| (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
    if fields.next().is_some() || !name(profile) || !name(monitor) {
        return None;
    }
    let entry = Entry {
        at_ms,
        average: average as f64 / 1000.0,
        holding,
    };
    Some((profile.to_string(), monitor.to_string(), entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: u64, average: f64, holding: bool) -> Entry {
        Entry {
            at_ms,
            average,
            holding,
        }
    }

    #[test]
    fn round_trip_per_profile_and_monitor() {
        let mut table = Table::default();
        table.set(None, "cpu", entry(1000, 12.345, false));
        table.set(Some("web"), "cpu", entry(1000, 50.0, true));
        table.set(Some("web"), "tcp:3389", entry(1001, 190.0, true));
        let parsed = Table::parse(&table.render()).unwrap();
        assert_eq!(parsed, table);
        assert_eq!(parsed.get(None, "cpu"), Some(entry(1000, 12.345, false)));
        assert_eq!(
            parsed.get(Some("web"), "cpu"),
            Some(entry(1000, 50.0, true))
        );
        assert_eq!(parsed.get(Some("db"), "cpu"), None);
        assert_eq!(Table::parse(b"").unwrap(), Table::default());
    }

    #[test]
    fn torn_edited_or_forged_files_are_refused() {
        let mut table = Table::default();
        table.set(None, "cpu", entry(1000, 12.0, true));
        let bytes = table.render();
        assert!(Table::parse(&bytes[..bytes.len() - 3]).is_err());
        let edited = String::from_utf8(bytes.clone())
            .unwrap()
            .replace(" 1\n", " 0\n");
        assert!(Table::parse(edited.as_bytes()).is_err());
        assert!(Table::parse(b"garbage\n").is_err());
        assert!(Table::parse(&[0xff, b'\n']).is_err());
        // A line that checks out but does not parse.
        let body = "* cpu 1000 12000 2\n";
        let forged = format!("{MAGIC} 1 {:016x}\n{body}", checksum(body.as_bytes()));
        assert!(Table::parse(forged.as_bytes()).is_err());
    }

    #[test]
    fn old_entries_are_forgotten_and_the_table_stays_bounded() {
        let mut table = Table::default();
        table.set(Some("old"), "cpu", entry(0, 1.0, true));
        table.set(None, "cpu", entry(FORGET_AFTER_MS, 2.0, false));
        assert_eq!(table.get(Some("old"), "cpu"), None);
        for i in 0..MAX_ENTRIES as u64 + 10 {
            table.set(
                None,
                &format!("tcp:{i}"),
                entry(FORGET_AFTER_MS + i, 0.0, false),
            );
        }
        assert_eq!(table.entries.len(), MAX_ENTRIES);
        // The least recently updated went first.
        assert_eq!(table.get(None, "cpu"), None);
        assert!(table.get(None, "tcp:10").is_some());
        assert!(Table::parse(&table.render()).is_ok());
    }
}
