//! The config lb-feedback-service answers with, and its reload (SIGHUP; the Windows Service
//! Control Manager's `paramchange`): a valid file replaces it for the next polls, a broken one
//! is logged with its file, line and column (once, until it fails differently) and the old
//! config stays, and the settings a running service cannot change (its connection limits and
//! sample window, sized at start) are logged as needing a restart and keep their old values.
//! The reload runs on a thread of its own ([`super::reloader`]), never the signal thread's.

use std::sync::{Arc, PoisonError, RwLock};

use crate::config::{Config, ConfigError};
use crate::probe::Needs;

/// One config and what it needs sampled, swapped whole so a poll sees one or the other.
pub struct Current {
    pub config: Config,
    pub needs: Needs,
}

impl Current {
    fn new(config: Config) -> Current {
        Current {
            needs: Needs::of(&config),
            config,
        }
    }
}

/// The config in force, shared by every thread of the service.
#[derive(Clone)]
pub struct Live(Arc<RwLock<Arc<Current>>>);

impl Live {
    pub fn new(config: Config) -> Live {
        Live(Arc::new(RwLock::new(Arc::new(Current::new(config)))))
    }

    /// The config in force now; a poll keeps the one it started with.
    pub fn get(&self) -> Arc<Current> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes a freshly loaded config, or keeps the old one if it did not load; returns the
    /// log lines that say which, and what needs a restart.
    pub fn replace(&self, loaded: Result<Config, ConfigError>) -> Vec<String> {
        let mut new = match loaded {
            Ok(config) => config,
            Err(err) => {
                return vec![format!("config not reloaded, the old one stays: {err}")];
            }
        };
        let old = self.get();
        let mut lines = keep_fixed(&old.config, &mut new);
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Current::new(new));
        lines.insert(0, "config reloaded: the next polls use it".into());
        lines
    }
}

/// The last failed reload's error, so a config that stays broken through several reloads
/// (a HUP from every deploy step) is logged once, and again when it breaks differently.
#[derive(Default)]
pub struct Failures(Option<String>);

impl Failures {
    /// Whether `loaded` is worth its log lines: a success, or a failure other than the last.
    pub fn is_new(&mut self, loaded: &Result<Config, ConfigError>) -> bool {
        let failure = loaded.as_ref().err().map(ToString::to_string);
        let new = failure.is_none() || failure != self.0;
        self.0 = failure;
        new
    }
}

/// Puts back into `new` the settings a running service keeps as it started (its limits and
/// sample window size threads, slots and deadlines), one line for each that changed.
pub fn keep_fixed(old: &Config, new: &mut Config) -> Vec<String> {
    let mut lines = Vec::new();
    let mut keep = |name: &str, old_value: String, new_value: String| {
        if old_value != new_value {
            lines.push(format!(
                "{name} changed from {old_value} to {new_value}: that needs a restart; still {old_value}"
            ));
        }
    };
    keep(
        "sample_ms",
        old.sample_ms.get().to_string(),
        new.sample_ms.get().to_string(),
    );
    keep(
        "max_in_flight",
        old.max_in_flight.get().to_string(),
        new.max_in_flight.get().to_string(),
    );
    keep(
        "max_in_flight_per_source",
        old.max_in_flight_per_source.get().to_string(),
        new.max_in_flight_per_source.get().to_string(),
    );
    // The HTTP listener is bound at start, as the agent port's.
    let http = |addr: Option<std::net::SocketAddr>| addr.map_or("off".into(), |a| a.to_string());
    keep("http", http(old.http), http(new.http));
    new.sample_ms = old.sample_ms;
    new.max_in_flight = old.max_in_flight;
    new.max_in_flight_per_source = old.max_in_flight_per_source;
    new.http = old.http;
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(json: &str) -> Config {
        let mut config = Config::default();
        config.apply_json(json, Path::new("c.json")).unwrap();
        config
    }

    #[test]
    fn a_valid_config_replaces_the_old_and_a_broken_one_changes_nothing() {
        let live = Live::new(config(r#"{"mode": "normal"}"#));
        let lines = live.replace(Ok(config(
            r#"{"mode": "drain", "tcp": [{"port": 80, "max_connections": 5}]}"#,
        )));
        assert_eq!(lines, ["config reloaded: the next polls use it"]);
        assert_eq!(live.get().config.mode, crate::config::Mode::Drain);
        assert_eq!(live.get().needs.tcp, [80]);
        let mut broken = Config::default();
        let err = broken
            .apply_json(
                "{\n  \"mode\": \"sleep\"\n}",
                Path::new("/etc/lb-feedback/config.json"),
            )
            .unwrap_err();
        let lines = live.replace(Err(err));
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with(
                "config not reloaded, the old one stays: /etc/lb-feedback/config.json:2:"
            ),
            "{lines:?}"
        );
        assert_eq!(live.get().config.mode, crate::config::Mode::Drain);
    }

    #[test]
    fn a_failure_is_told_once_until_it_changes_or_a_reload_succeeds() {
        let broken = |text: &str| {
            Config::default()
                .apply_json(text, Path::new("c.json"))
                .map(|()| Config::default())
        };
        let mut failures = Failures::default();
        assert!(failures.is_new(&broken("{")));
        assert!(!failures.is_new(&broken("{")));
        assert!(failures.is_new(&broken("{\"mode\": 1}")));
        assert!(failures.is_new(&Ok(Config::default())));
        assert!(failures.is_new(&Ok(Config::default())));
        assert!(failures.is_new(&broken("{\"mode\": 1}")));
    }

    #[test]
    fn limits_and_the_sample_window_need_a_restart() {
        let live = Live::new(config(r#"{"sample_ms": 1000}"#));
        let lines = live.replace(Ok(config(
            r#"{"sample_ms": 500, "max_in_flight": 10, "ram": {"importance": 0}}"#,
        )));
        assert_eq!(
            lines,
            [
                "config reloaded: the next polls use it",
                "sample_ms changed from 1000 to 500: that needs a restart; still 1000",
                "max_in_flight changed from 1024 to 10: that needs a restart; still 1024",
            ]
        );
        let current = live.get();
        assert_eq!(current.config.sample_ms.get(), 1000);
        assert_eq!(current.config.max_in_flight.get(), 1024);
        assert_eq!(current.config.ram.importance.get(), 0.0);
        let lines = live.replace(Ok(config(r#"{"http": "127.0.0.1:3334"}"#)));
        assert_eq!(
            lines[1..],
            ["http changed from off to 127.0.0.1:3334: that needs a restart; still off"]
        );
        assert_eq!(live.get().config.http, None);
    }
}
