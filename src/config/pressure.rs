//! The pressure monitors' settings: which stall (PSI) each watches (`cpu`, `memory` or `io`,
//! `some` or `full`), how much it counts and when it drains, in the file's list form and
//! the text form of `LB_FEEDBACK_PRESSURE` and `--pressure`.

use serde::{Deserialize, Serialize};

use super::custom::OnError;
use super::error::Problem;
use super::values::{
    Importance, Real, Threshold, check_release, entry_fields, one, parse_list, weighing,
};

/// The resource whose stalls are counted, as /proc/pressure names its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Cpu,
    Memory,
    Io,
}

/// `some`: at least one task stalled; `full`: every non-idle task stalled at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stall {
    Some,
    Full,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Io => "io",
        }
    }

    fn parse(text: &str) -> Result<Resource, Problem> {
        match text.trim() {
            "cpu" => Ok(Resource::Cpu),
            "memory" => Ok(Resource::Memory),
            "io" => Ok(Resource::Io),
            other => Err(Problem::UnknownWord {
                what: "resource",
                got: other.into(),
                allowed: "cpu, memory, io",
            }),
        }
    }
}

impl Stall {
    pub fn name(self) -> &'static str {
        match self {
            Stall::Some => "some",
            Stall::Full => "full",
        }
    }

    fn parse(text: &str) -> Result<Stall, Problem> {
        match text.trim() {
            "some" => Ok(Stall::Some),
            "full" => Ok(Stall::Full),
            other => Err(Problem::UnknownWord {
                what: "kind",
                got: other.into(),
                allowed: "some, full",
            }),
        }
    }
}

/// The share of the sample window in which tasks stalled on a resource.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "PressureEntry")]
pub struct PressureMonitor {
    pub resource: Resource,
    pub kind: Stall,
    pub importance: Importance,
    pub threshold: Threshold,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Threshold>,
    /// `ignore`: a kernel without PSI leaves this monitor out instead of `error:pressure`.
    pub on_error: OnError,
}

/// A file's `pressure` entry as written, checked (its release against its threshold) as it
/// is read, so an error has the entry's position.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PressureEntry {
    resource: Resource,
    #[serde(default = "some")]
    kind: Stall,
    #[serde(default = "one")]
    importance: Importance,
    #[serde(default = "off")]
    threshold: Threshold,
    #[serde(default)]
    release: Option<Threshold>,
    #[serde(default)]
    on_error: OnError,
}

fn some() -> Stall {
    Stall::Some
}

fn off() -> Threshold {
    Threshold::ZERO
}

impl TryFrom<PressureEntry> for PressureMonitor {
    type Error = Problem;
    fn try_from(entry: PressureEntry) -> Result<PressureMonitor, Problem> {
        let monitor = PressureMonitor {
            resource: entry.resource,
            kind: entry.kind,
            importance: entry.importance,
            threshold: entry.threshold,
            release: entry.release,
            on_error: entry.on_error,
        };
        monitor.check()?;
        Ok(monitor)
    }
}

impl PressureMonitor {
    pub fn enabled(&self) -> bool {
        self.importance.get() > 0.0 || self.threshold.get() > 0.0
    }

    /// `pressure:cpu:some`: the monitor's name in loads, reasons and `--explain`.
    pub fn name(&self) -> String {
        format!("pressure:{}:{}", self.resource.name(), self.kind.name())
    }

    pub(super) fn check(&self) -> Result<(), Problem> {
        check_release(
            || self.name(),
            self.threshold.get(),
            self.release.map(Real::get),
        )
    }

    /// Parses one `resource:kind[:importance[:threshold[:release]]]` entry.
    fn parse(text: &str) -> Result<PressureMonitor, Problem> {
        let fields = entry_fields(text, "resource:kind[:importance[:threshold[:release]]]")?;
        let (resource, kind) = (Resource::parse(fields[0])?, Stall::parse(fields[1])?);
        let (importance, threshold, release) = weighing::<100>(&fields)?;
        let monitor = PressureMonitor {
            resource,
            kind,
            importance,
            threshold,
            release,
            on_error: OnError::Error,
        };
        monitor.check()?;
        Ok(monitor)
    }

    /// The list form used by `LB_FEEDBACK_PRESSURE` and `--pressure`; empty means none.
    pub(super) fn parse_list(text: &str) -> Result<Vec<PressureMonitor>, Problem> {
        parse_list(text, PressureMonitor::parse)
    }
}

impl super::settings::Entry for PressureMonitor {
    fn what(&self) -> String {
        self.name()
    }

    fn limits(&self) -> (f64, Option<f64>) {
        (self.threshold.get(), self.release.map(Real::get))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_reads_each_field() {
        let list = PressureMonitor::parse_list("cpu:some:1:60, memory:full:2:40:20").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name(), "pressure:cpu:some");
        assert_eq!(list[0].threshold.get(), 60.0);
        assert_eq!(list[0].release, None);
        assert_eq!(list[1].name(), "pressure:memory:full");
        assert_eq!(list[1].importance.get(), 2.0);
        assert_eq!(list[1].release.map(Real::get), Some(20.0));
        assert_eq!(PressureMonitor::parse_list("").unwrap(), []);
    }

    #[test]
    fn the_text_form_refuses_what_it_cannot_mean() {
        let err = |text| PressureMonitor::parse_list(text).unwrap_err().to_string();
        assert_eq!(
            err("disk:some"),
            "unknown resource \"disk\"; allowed: cpu, memory, io"
        );
        assert_eq!(
            err("cpu:most"),
            "unknown kind \"most\"; allowed: some, full"
        );
        assert_eq!(
            err("cpu:some:x"),
            "importance \"x\" is not a number; allowed: 0 to 100"
        );
        assert!(
            err("cpu").contains("expected resource:kind"),
            "{}",
            err("cpu")
        );
        assert!(err("cpu:some:1:60:70").contains("must be below its threshold"));
    }

    #[test]
    fn a_file_entry_defaults_to_some_with_importance_one() {
        let monitor: PressureMonitor = serde_json::from_str(r#"{"resource": "io"}"#).unwrap();
        assert_eq!(monitor.name(), "pressure:io:some");
        assert_eq!(monitor.importance.get(), 1.0);
        assert!(monitor.enabled());
        let refused = serde_json::from_str::<PressureMonitor>(r#"{"resource": "io", "x": 1}"#);
        assert!(refused.is_err());
    }
}
