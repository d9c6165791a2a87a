//! The effective configuration: built-in defaults, then the JSON file, the environment and the
//! command-line flags laid over them in that order, every value range-checked where it is read
//! and every error naming where the bad value came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cidr::Cidr;

mod custom;
mod error;
mod file;
pub mod keys;
mod monitors;
mod pressure;
pub mod read;
pub mod reference;
mod settings;
mod teach;
#[cfg(test)]
mod tests;
mod values;

pub use custom::{CustomMonitor, MAX_CUSTOM, OnError, Source, SourceKind, TimeoutMs};
pub use error::{ConfigError, CustomProblem, Figure, Origin, Place, Problem, UrlProblem};
pub use file::{MAX_PROFILES, Profile};
pub use keys::{Key, SETTINGS, Setting};
pub use monitors::{Monitor, MonitorLayer, SessionsMonitor, TcpMonitor, release_of};
pub use pressure::{PressureMonitor, Resource, Stall};
pub use settings::{CustomEntries, Entries, Entry, Monitors, Optional, Patched, Settings, Slot};
pub use values::*;

/// The file read when neither `--config` nor `LB_FEEDBACK_CONFIG` names one.
#[cfg(not(windows))]
pub fn default_config_path() -> PathBuf {
    PathBuf::from("/etc/lb-feedback/config.json")
}

/// The file read when neither `--config` nor `LB_FEEDBACK_CONFIG` names one.
#[cfg(windows)]
pub fn default_config_path() -> PathBuf {
    program_data().join("config.json")
}

#[cfg(not(windows))]
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lb-feedback")
}

#[cfg(windows)]
fn default_state_dir() -> PathBuf {
    program_data()
}

#[cfg(windows)]
fn program_data() -> PathBuf {
    let base = std::env::var_os("ProgramData").unwrap_or_else(|| OsString::from(r"C:\ProgramData"));
    PathBuf::from(base).join("lb-feedback")
}

/// Builds [`Config`] and its defaults from the key table's fields ([`keys::fields`]) and a
/// field per monitor of the registry.
macro_rules! config {
    (
        before { $($(#[doc = $bdoc:literal])* $bf:ident: $bt:ty = $bd:expr,
            file $(#[$battr:meta])* $bl:ty;)* }
        after { $($(#[doc = $adoc:literal])* $af:ident: $at:ty = $ad:expr,
            file $(#[$aattr:meta])* $al:ty;)* }
        $($field:ident: $settings:ty => $monitor:ty),* $(,)?
    ) => {
        /// Everything one probe needs to know.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        pub struct Config {
            pub mode: Mode,
            $($(#[doc = $bdoc])* pub $bf: $bt,)*
            $(pub $field: <$settings as Settings>::Value,)*
            $($(#[doc = $adoc])* pub $af: $at,)*
            /// Where `mode` was last set; shown by `--explain` and `lb-feedback mode`.
            #[serde(skip)]
            pub mode_origin: Origin,
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    mode: Mode::Normal,
                    $($bf: $bd,)*
                    $($field: <$settings as Settings>::default(),)*
                    $($af: $ad,)*
                    mode_origin: Origin::Default,
                }
            }
        }

impl Config {
    /// This config with the named profile laid over it, or `None` for an unknown name.
    pub fn with_profile(&self, name: &str) -> Option<Config> {
        let profile = self.profiles.get(name)?;
        let mut config = self.clone();
        let monitors = self.monitors(Some(profile));
        $(config.$field = <$settings as Settings>::owned(monitors.$field);)*
        config.maxconn = self.maxconn_of(Some(profile));
        Some(config)
    }

    /// The monitors of the base config (`None`) or of one of its profiles, read in place:
    /// what a probe samples for it, without building (cloning) the profiled config.
    pub fn monitors<'a>(&'a self, profile: Option<&'a Profile>) -> Monitors<'a> {
        Monitors {
            $($field: <$settings as Settings>::view(
                &self.$field,
                profile.and_then(|p| p.$field.0.as_ref()),
            ),)*
        }
    }

    /// Every monitor's own `release` is below its threshold, in the base and in each profile:
    /// they may come from different layers, so this is checked once all are laid.
    pub fn check_releases(&self) -> Result<(), Problem> {
        let profiles = self.profiles.iter().map(|(name, p)| (Some(name), Some(p)));
        for (name, profile) in std::iter::once((None, None)).chain(profiles) {
            let monitors = self.monitors(profile);
            let what = |monitor: String| match name {
                Some(name) => format!("profile {:?}: {monitor}", name.as_str()),
                None => monitor,
            };
            $(<$settings as Settings>::check(monitors.$field, stringify!($field), &what)?;)*
        }
        Ok(())
    }
}
    };
}

/// The key table's fields handed on to [`config`] with the registry's monitors.
macro_rules! config_with_monitors {
    ($($fields:tt)*) => {
        crate::monitors::registry!(config, $($fields)*);
    };
}

keys::fields!(config_with_monitors);

impl Config {
    /// The maxconn of the base config (`None`) or of one of its profiles, as [`monitors`]
    /// reads the monitors.
    ///
    /// [`monitors`]: Config::monitors
    pub fn maxconn_of(&self, profile: Option<&Profile>) -> Option<MaxConn> {
        profile.and_then(|p| p.maxconn).unwrap_or(self.maxconn)
    }
}

/// Which file to read and whether its absence is an error.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Named by `--config` or `LB_FEEDBACK_CONFIG`, so it must exist.
    pub explicit: bool,
}

impl ConfigFile {
    pub fn choose(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<OsString>) -> ConfigFile {
        match (flag, env("LB_FEEDBACK_CONFIG")) {
            (Some(path), _) => ConfigFile {
                path: path.to_path_buf(),
                explicit: true,
            },
            (None, Some(path)) if !path.is_empty() => ConfigFile {
                path: PathBuf::from(path),
                explicit: true,
            },
            _ => ConfigFile {
                path: default_config_path(),
                explicit: false,
            },
        }
    }
}

/// Builds the effective config: defaults < file < environment < flags.
///
/// `env` looks a variable up (the process environment in production, a map in tests);
/// `flags` are the settings given on the command line, in order.
pub fn load(
    file: &ConfigFile,
    env: &dyn Fn(&str) -> Option<OsString>,
    flags: &[(Key, String)],
) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    match read::read(&file.path) {
        Ok(text) => config.apply_json(&text, &file.path)?,
        Err(read::Unread::Missing) if !file.explicit => {}
        Err(unread) => {
            return Err(ConfigError {
                place: Place::File(file.path.clone()),
                problem: Problem::Unread(unread),
            });
        }
    }
    for key in Setting::textual() {
        let var = key.env_var();
        if let Some(value) = env(var) {
            let text = value.into_string().map_err(|_| ConfigError {
                place: Place::Env(var),
                problem: Problem::NotUtf8,
            })?;
            config
                .apply_text(key, &text, Origin::Env(var))
                .map_err(|problem| ConfigError {
                    place: Place::Env(var),
                    problem,
                })?;
        }
    }
    for (key, text) in flags {
        let flag = key.flag();
        config
            .apply_text(key, text, Origin::Flag(flag))
            .map_err(|problem| ConfigError {
                place: Place::Flag(flag),
                problem,
            })?;
    }
    config.check_releases().map_err(|problem| ConfigError {
        place: Place::Combined,
        problem,
    })?;
    Ok(config)
}

/// [`load`] with this process's environment: the file `--config` names (`flag`), else
/// `LB_FEEDBACK_CONFIG`'s, else the default, and `flags` over both; the one way both
/// binaries read their settings.
pub fn load_from_environment(
    flag: Option<&Path>,
    flags: &[(Key, String)],
) -> Result<Config, ConfigError> {
    let ours = our_variables();
    let env = |name: &str| {
        ours.iter()
            .find(|(var, _)| var.as_encoded_bytes() == name.as_bytes())
            .map(|(_, value)| value.clone())
    };
    let file = ConfigFile::choose(flag, &env);
    load(&file, &env, flags)
}

/// The environment's `LB_FEEDBACK_*` variables, in its order (the first of two entries with
/// one name counts, as with getenv), found in one pass over `environ` and only they copied:
/// a lookup per setting (std's `var_os`, a C string built each time, then getenv) cost a
/// probe 9 k instructions for the 27 settings, and std's `vars_os` copies every variable
/// (docs/BENCHMARKS.md).
#[cfg(unix)]
fn our_variables() -> Vec<(OsString, OsString)> {
    use std::os::unix::ffi::OsStrExt;
    const PREFIX: &[u8] = b"LB_FEEDBACK_";
    let mut ours = Vec::new();
    // SAFETY: `environ` is the process's NULL-terminated array of NUL-terminated entries.
    // Neither program changes its environment (no setenv, no `std::env::set_var`, which is
    // `unsafe` in this edition for that reason), so no entry is freed or moved while read.
    unsafe {
        let mut entry = libc::environ.cast_const();
        while !entry.is_null() && !(*entry).is_null() {
            let text = *entry;
            entry = entry.add(1);
            // By hand rather than strncmp, which no other code calls (one imported symbol
            // fewer for the plain build's loader); a shorter entry's NUL differs first.
            if !PREFIX
                .iter()
                .enumerate()
                .all(|(at, byte)| *text.cast::<u8>().add(at) == *byte)
            {
                continue;
            }
            let bytes = std::ffi::CStr::from_ptr(text).to_bytes();
            if let Some(equals) = bytes.iter().position(|byte| *byte == b'=') {
                let (name, value) = (&bytes[..equals], &bytes[equals + 1..]);
                ours.push((
                    std::ffi::OsStr::from_bytes(name).to_os_string(),
                    std::ffi::OsStr::from_bytes(value).to_os_string(),
                ));
            }
        }
    }
    ours
}

/// Elsewhere std's copy of the environment, filtered the same way.
#[cfg(not(unix))]
fn our_variables() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| name.as_encoded_bytes().starts_with(b"LB_FEEDBACK_"))
        .collect()
}
