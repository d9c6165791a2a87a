//! The monitor interface and its registry. Every monitor (cpu, ram, tcp, sessions, custom)
//! says what a config and its profiles need it to read, reads it in one sample window
//! (begun before the window, ended after it), and turns a reading into loads with their
//! figures in words when those are asked for; `probe`, `explain`, `status`, `/metrics` and
//! the service's sampler go through the registry (`crate::monitors`) and know no monitor by
//! name.

use std::time::{Duration, Instant};

use super::{Cgroups, MetricError};
use crate::config::{CpuMode, Monitors, OnError, Real, release_of};
use crate::rules::Load;

/// Where monitors keep what since-last mode needs between probes (the state directory):
/// one line each, kept whole or not at all.
pub trait Store {
    /// A monitor's own line (`name`: lower-case letters and `-`), as it was saved; `None`
    /// when there is none or it does not check out.
    fn record(&self, name: &str) -> Option<String>;
    /// Keeps `line` (one line of text) for the next probe; a failed save only means it
    /// samples.
    fn save_record(&self, name: &str, line: &str);
}

/// What a sample is taken with.
pub struct Window<'a> {
    /// The sample window (`sample_ms`).
    pub length: Duration,
    pub cpu_mode: CpuMode,
    /// `scope` for CPU and RAM.
    pub scope: crate::config::Scopes,
    /// since-last: saved counters older than this are not used.
    pub max_age_ms: u64,
    pub cgroups: &'a Cgroups,
    pub store: &'a dyn Store,
}

/// A monitor's raw reading in words, and where it came from (`None`: the host's sockets).
/// Built only when someone reads it ([`Answered::push`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub text: String,
    pub source: Option<String>,
    /// A custom monitor's value and how long its source took.
    pub custom: Option<(f64, Duration)>,
}

impl Figure {
    pub fn new(text: String, source: Option<String>) -> Figure {
        Figure {
            text,
            source,
            custom: None,
        }
    }
}

impl std::fmt::Display for Figure {
    /// `busy 7.9% over 1000 ms; host /proc/stat (...)`, as `--explain` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}; {source}", self.text)?,
            None => f.write_str(&self.text)?,
        }
        match self.custom {
            Some((_, took)) => write!(f, ", took {} ms", took.as_millis()),
            None => Ok(()),
        }
    }
}

/// What the monitors of one config or profile answered.
pub struct Answered {
    /// Each load, with its figure in words when they were asked for: only `--explain` reads
    /// them, and a reply costs less without (`format!` was 8 k of a 110 k-instruction probe).
    pub loads: Vec<(Load, Option<Figure>)>,
    /// Monitors that ignore failures (`on_error: "ignore"`) whose source failed: name and why.
    pub ignored: Vec<(String, String)>,
    words: bool,
}

impl Answered {
    /// Nothing answered yet; `words`: whether each load's figure is put in words.
    pub fn new(words: bool) -> Answered {
        Answered {
            loads: Vec::new(),
            ignored: Vec::new(),
            words,
        }
    }

    /// A monitor's load; `figure` puts it in words, and is called only when they are wanted.
    pub fn push(&mut self, load: Load, figure: impl FnOnce() -> Figure) {
        let figure = self.words.then(figure);
        self.loads.push((load, figure));
    }

    /// A monitor whose source failed (`why`): left out and listed in `ignored` when it
    /// ignores failures, else the probe's error, which `error` makes of `why`.
    pub fn failed(
        &mut self,
        on_error: OnError,
        name: &str,
        why: String,
        error: impl FnOnce(String) -> MetricError,
    ) -> Result<(), MetricError> {
        match on_error {
            OnError::Ignore => {
                self.ignored.push((name.to_string(), why));
                Ok(())
            }
            OnError::Error => Err(error(why)),
        }
    }
}

/// A reading begun, and when the window it needs has passed (`None`: it needs none); `None`
/// when nothing was asked for.
pub type Started<B> = Option<(B, Option<Instant>)>;

pub trait Monitor {
    /// What to read for a config and all its profiles together.
    type Needs: Clone + std::fmt::Debug + Default + PartialEq;
    /// A reading begun before the window.
    type Begun;
    /// What one sample read; the default is "not read".
    type Reading: Clone + std::fmt::Debug + Default + PartialEq;

    /// Adds what `monitors` need read.
    fn need(monitors: &Monitors, needs: &mut Self::Needs);

    /// Called once all configs have added theirs (sorts and dedups lists).
    fn settle(_needs: &mut Self::Needs) {}

    /// Starts reading what `needs` asks for; `None` when it asks for nothing. The deadline
    /// is when the window this reading needs has passed (`None`: no window).
    fn begin(needs: &Self::Needs, window: &Window) -> Result<Started<Self::Begun>, MetricError>;

    /// Finishes a reading once the window has passed.
    fn end(
        needs: &Self::Needs,
        begun: Self::Begun,
        window: &Window,
    ) -> Result<Self::Reading, MetricError>;

    /// The loads `monitors` give from `reading`; `hysteresis` sets releases left unset. A
    /// reading keeps what its words need, and [`Answered::push`] writes them only if asked.
    fn answer(
        monitors: &Monitors,
        reading: &Self::Reading,
        hysteresis: f64,
        answered: &mut Answered,
    ) -> Result<(), MetricError>;

    /// What `check-config` warns of: what `needs` asks for that cannot be read here, so
    /// that its monitors would answer an error.
    fn warnings(_needs: &Self::Needs, _window: &Window) -> Vec<String> {
        Vec::new()
    }

    /// The labels `/metrics` gives the parts of a load's name after the monitor's own
    /// (`tcp:3389` is `monitor="tcp",port="3389"`).
    const LABELS: &'static [&'static str] = &[];

    /// The sources of this reading that can fail on their own, each with its failure:
    /// what the service logs when one starts failing or answers again.
    fn sources(_reading: &Self::Reading) -> Vec<(String, Option<String>)> {
        Vec::new()
    }
}

/// A monitor's threshold and the release its drains end at, as [`load`] takes them.
pub fn limits<const MAX: u32>(
    threshold: Real<MAX>,
    release: Option<Real<MAX>>,
    hysteresis: f64,
) -> (f64, f64) {
    let threshold = threshold.get();
    (
        threshold,
        release_of(threshold, release.map(Real::get), hysteresis),
    )
}

/// One monitor's load; `threshold` is (threshold, release).
pub fn load(name: &str, load: f64, importance: f64, (threshold, release): (f64, f64)) -> Load {
    Load::new(name.to_string(), load, importance, threshold, release)
}
