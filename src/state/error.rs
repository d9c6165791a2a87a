//! What goes wrong in the state directory, as values: which file ([`StateError::path`]) and
//! what ([`StateProblem`]), and why the agent's user could not keep state there
//! ([`Unusable`]). Their `Display` is the text people read, rendered where it is reported.

use std::fmt;
use std::path::PathBuf;

use super::pollers::TableProblem;

/// A state file (or the directory) and what went wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateError {
    pub path: PathBuf,
    pub problem: StateProblem,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for StateError {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateProblem {
    /// A link where a file or the directory should be.
    SymbolicLink,
    /// A FIFO with no reader or a device (the non-blocking open says ENXIO).
    FifoOrDevice,
    /// Any other I/O error: its reason.
    Io {
        reason: String,
    },
    TooBig {
        len: u64,
        limit: u64,
    },
    /// Past `limit` while it was read.
    Grew {
        limit: u64,
    },
    NotRegular {
        kind: &'static str,
    },
    HardLinks,
    /// Root created the directory but could not hand it to `state_owner`.
    NotGiven {
        user: String,
        reason: String,
    },
    /// The mode file does not parse; where, and how it starts (escaped).
    NotModeFile {
        line: usize,
        column: usize,
        start: String,
    },
    /// The runtime mode could not be written as JSON.
    Encode {
        reason: String,
    },
    /// A poll could not be recorded even in a fresh poller table.
    Table(TableProblem),
    /// The poller table does not read, for `status`.
    BadTable(TableProblem),
    LockHeld {
        ms: u128,
    },
}

impl fmt::Display for StateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateProblem::SymbolicLink => {
                f.write_str("a symbolic link, which is never followed here; remove it")
            }
            StateProblem::FifoOrDevice => {
                f.write_str("not a regular file (a FIFO or device); remove it")
            }
            StateProblem::Io { reason } | StateProblem::Encode { reason } => f.write_str(reason),
            StateProblem::TooBig { len, limit } => {
                write!(
                    f,
                    "{len} bytes, more than the {limit} it may hold; remove it"
                )
            }
            StateProblem::Grew { limit } => write!(f, "more than {limit} bytes; remove it"),
            StateProblem::NotRegular { kind } => write!(
                f,
                "not a regular file but {kind}; lb-feedback writes only regular files there; remove it"
            ),
            StateProblem::HardLinks => {
                f.write_str("has other hard links; lb-feedback never makes any; remove it")
            }
            StateProblem::NotGiven { user, reason } => write!(
                f,
                "created, but cannot give it to state_owner {user:?}: {reason}"
            ),
            StateProblem::NotModeFile {
                line,
                column,
                start,
            } => write!(
                f,
                "not a mode file written by lb-feedback (line {line}, column {column}; it starts {start})"
            ),
            StateProblem::Table(why) => why.fmt(f),
            StateProblem::BadTable(why) => write!(
                f,
                "{why}; remove it to start afresh (every poller is then owed)"
            ),
            StateProblem::LockHeld { ms } => write!(f, "its lock was held for over {ms} ms"),
        }
    }
}

/// Why the agent's user could not keep state in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// It cannot be opened (a link, not a directory, ...).
    Unopenable(StateError),
    NotWritable {
        path: PathBuf,
        who: Who,
        why: Denied,
    },
    /// It is missing, and its nearest existing parent does not let the user create it.
    CannotCreate {
        path: PathBuf,
        who: Who,
        parent: PathBuf,
        why: Denied,
    },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Unopenable(err) => err.fmt(f),
            Unusable::NotWritable { path, who, why } => {
                write!(f, "{} is not writable by {who} ({why})", path.display())
            }
            Unusable::CannotCreate {
                path,
                who,
                parent,
                why,
            } => write!(
                f,
                "{} is missing and {who} cannot create it ({}: {why})",
                path.display(),
                parent.display()
            ),
        }
    }
}

/// The agent's user: `state_owner` when named, else whoever runs this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    User(String),
    ThisUser,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::User(user) => write!(f, "user {user}"),
            Who::ThisUser => f.write_str("this user"),
        }
    }
}

/// Why a user may not create files in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The directory could not be looked at: the I/O error.
    Stat {
        error: String,
    },
    Passwd {
        error: String,
    },
    NoUser {
        user: String,
    },
    /// The kernel refused this process (the agent's user): its error, and the directory's
    /// owner and mode.
    Refused {
        error: String,
        ownership: Ownership,
    },
    ReadOnlyFileSystem,
    /// Its owner, group and mode let that user not write.
    Mode(Ownership),
    /// Windows: the read-only attribute.
    ReadOnly,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Stat { error } => f.write_str(error),
            Denied::Passwd { error } => write!(f, "cannot read /etc/passwd: {error}"),
            Denied::NoUser { user } => write!(f, "no user {user} in /etc/passwd"),
            Denied::Refused { error, ownership } => write!(f, "{error}; {ownership}"),
            Denied::ReadOnlyFileSystem => f.write_str("read-only file system"),
            Denied::Mode(ownership) => ownership.fmt(f),
            Denied::ReadOnly => f.write_str("read-only"),
        }
    }
}

/// A directory's owner, group and permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl fmt::Display for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "owned by {}:{}, mode {:o}",
            self.uid, self.gid, self.mode
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each problem's text, as the messages read before they were types.
    #[test]
    fn each_problem_reads_as_before() {
        let at = |problem| {
            StateError {
                path: "/var/lib/lb-feedback/pollers".into(),
                problem,
            }
            .to_string()
        };
        assert_eq!(
            at(StateProblem::TooBig {
                len: 5000,
                limit: 4096
            }),
            "/var/lib/lb-feedback/pollers: 5000 bytes, more than the 4096 it may hold; remove it"
        );
        assert_eq!(
            at(StateProblem::NotRegular { kind: "a FIFO" }),
            "/var/lib/lb-feedback/pollers: not a regular file but a FIFO; lb-feedback writes only \
             regular files there; remove it"
        );
        assert_eq!(
            at(StateProblem::BadTable(TableProblem::MalformedLine {
                line: 3
            })),
            "/var/lib/lb-feedback/pollers: line 3 is malformed; remove it to start afresh (every \
             poller is then owed)"
        );
        assert_eq!(
            at(StateProblem::NotModeFile {
                line: 1,
                column: 2,
                start: "\"x\"".into()
            }),
            "/var/lib/lb-feedback/pollers: not a mode file written by lb-feedback (line 1, column \
             2; it starts \"x\")"
        );
        assert_eq!(
            at(StateProblem::LockHeld { ms: 500 }),
            "/var/lib/lb-feedback/pollers: its lock was held for over 500 ms"
        );
        let ownership = Ownership {
            uid: 0,
            gid: 0,
            mode: 0o755,
        };
        let unusable = Unusable::CannotCreate {
            path: "/srv/state".into(),
            who: Who::User("lb-feedback".into()),
            parent: "/srv".into(),
            why: Denied::Mode(ownership),
        };
        assert_eq!(
            unusable.to_string(),
            "/srv/state is missing and user lb-feedback cannot create it (/srv: owned by 0:0, mode \
             755)"
        );
        let unusable = Unusable::NotWritable {
            path: "/srv/state".into(),
            who: Who::ThisUser,
            why: Denied::Refused {
                error: "Permission denied (os error 13)".into(),
                ownership,
            },
        };
        assert_eq!(
            unusable.to_string(),
            "/srv/state is not writable by this user (Permission denied (os error 13); owned by \
             0:0, mode 755)"
        );
    }
}
