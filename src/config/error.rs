//! Where a setting came from, and a bad setting's error with the place it was found.

use std::fmt;
use std::path::PathBuf;

/// Where a setting came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// A bad setting, with the place it was found.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub place: Place,
    pub message: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole (missing, unreadable).
    File(PathBuf),
    /// A position inside the file; line and column count from 1.
    FileAt(PathBuf, usize, usize),
    Env(&'static str),
    Flag(&'static str),
    /// The file, the environment and the flags together (a release against its threshold).
    Combined,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::File(path) => write!(f, "{}: {}", path.display(), self.message),
            Place::FileAt(path, line, column) => {
                write!(f, "{}:{line}:{column}: {}", path.display(), self.message)
            }
            Place::Env(var) => write!(f, "environment variable {var}: {}", self.message),
            Place::Flag(flag) => write!(f, "--{flag}: {}", self.message),
            Place::Combined => write!(
                f,
                "the settings (file, environment and flags together): {}",
                self.message
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
