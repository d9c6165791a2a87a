//! Sampling for a probe: what a config needs read and the readings taken in one window,
//! one field per monitor of the registry (`crate::monitors`), every monitor begun before
//! the window and ended after it.

use std::time::{Duration, Instant};

use crate::config::{Config, CpuMode};
use crate::metrics::monitor::{Answered, Monitor, Window};
use crate::metrics::{Cgroups, MetricError};
use crate::monitors::registry;
use crate::state::StateDir;

macro_rules! per_monitor {
    ($($field:ident: $settings:ty => $monitor:ty),* $(,)?) => {
        /// What has to be read to answer for a config and any of its profiles.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Needs {
            $(pub $field: <$monitor as Monitor>::Needs,)*
        }

        /// The raw figures one sample produced.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Readings {
            $(pub $field: <$monitor as Monitor>::Reading,)*
        }

        impl Needs {
            /// Reads the base and each profile's monitors in place: no profiled config is
            /// built, so the cost grows with the size of the config, not with its square.
            pub fn of(config: &Config) -> Needs {
                let mut needs = Needs::default();
                let profiles = config.profiles.values().map(Some);
                for monitors in std::iter::once(None)
                    .chain(profiles)
                    .map(|p| config.monitors(p))
                {
                    $(<$monitor>::need(&monitors, &mut needs.$field);)*
                }
                $(<$monitor>::settle(&mut needs.$field);)*
                needs
            }
        }

        /// Every monitor begun, the window waited for when one asks for it, every one ended.
        fn read(
            needs: &Needs,
            window: &Window,
            wait: &mut dyn FnMut(Instant),
        ) -> Result<Readings, MetricError> {
            let mut until: Option<Instant> = None;
            let begun = ($(begin::<$monitor>(&needs.$field, window, &mut until)?,)*);
            if let Some(deadline) = until {
                wait(deadline);
            }
            let ($($field,)*) = begun;
            Ok(Readings {
                $($field: match $field {
                    Some(begun) => <$monitor>::end(&needs.$field, begun, window)?,
                    None => Default::default(),
                },)*
            })
        }

        /// The `/metrics` labels of the parts of a load's name after `monitor`'s.
        pub fn label_names(monitor: &str) -> &'static [&'static str] {
            $(if monitor == stringify!($field) {
                return <$monitor>::LABELS;
            })*
            &[]
        }

        impl Needs {
            /// What `check-config` warns of: what cannot be read here.
            pub fn warnings(&self, config: &Config, state: &StateDir) -> Vec<String> {
                let cgroups = Cgroups::default();
                let window = window(config, config.cpu_mode, &cgroups, state);
                let mut warnings = Vec::new();
                $(warnings.extend(<$monitor>::warnings(&self.$field, &window));)*
                warnings
            }
        }

        impl Readings {
            /// The loads the monitors of one config or profile give; with `words`, each
            /// figure in words too.
            pub fn answer(
                &self,
                monitors: &crate::config::Monitors,
                hysteresis: f64,
                words: bool,
            ) -> Result<Answered, MetricError> {
                let mut answered = Answered::new(words);
                $(<$monitor>::answer(monitors, &self.$field, hysteresis, &mut answered)?;)*
                Ok(answered)
            }

            /// Every source that can fail on its own, with its failure.
            pub fn sources(&self) -> Vec<(String, Option<String>)> {
                let mut sources = Vec::new();
                $(sources.extend(<$monitor>::sources(&self.$field));)*
                sources
            }
        }
    };
}

registry!(per_monitor);

/// One monitor begun; `until` becomes the latest deadline any monitor asked for.
fn begin<M: Monitor>(
    needs: &M::Needs,
    window: &Window,
    until: &mut Option<Instant>,
) -> Result<Option<M::Begun>, MetricError> {
    Ok(M::begin(needs, window)?.map(|(begun, deadline)| {
        if let Some(deadline) = deadline {
            *until = Some(until.map_or(deadline, |u| u.max(deadline)));
        }
        begun
    }))
}

/// Takes the readings `needs` asks for. `wait(deadline)` is called to pass the sample window,
/// and not at all when no window is needed (since-last mode with fresh counters, or no CPU
/// monitor).
pub fn sample(
    needs: &Needs,
    config: &Config,
    state: &StateDir,
    wait: &mut dyn FnMut(Instant),
) -> Result<Readings, MetricError> {
    sample_as(needs, config, config.cpu_mode, state, wait)
}

/// [`sample`] with the CPU read in `cpu_mode`, whatever the config's: the service's sample
/// mode without a copy of its config each window.
pub fn sample_as(
    needs: &Needs,
    config: &Config,
    cpu_mode: CpuMode,
    state: &StateDir,
    wait: &mut dyn FnMut(Instant),
) -> Result<Readings, MetricError> {
    let cgroups = Cgroups::default();
    read(needs, &window(config, cpu_mode, &cgroups, state), wait)
}

fn window<'a>(
    config: &Config,
    cpu_mode: CpuMode,
    cgroups: &'a Cgroups,
    state: &'a StateDir,
) -> Window<'a> {
    Window {
        length: Duration::from_millis(config.sample_ms.get()),
        cpu_mode,
        scope: config.scope,
        max_age_ms: config.since_last_max_seconds.get() * 1000,
        cgroups,
        store: state,
    }
}
