//! lb-feedback: an HAProxy agent-check responder. One probe reads the settings, samples the
//! monitors that count, applies the importance and threshold rules and answers with one line.
//!
//! The modules, in the order a probe uses them:
//! `cli` → `config` → `state` (runtime mode) → `socket` (agent-send) → `metrics` → `rules`
//! → `reply`, orchestrated by `probe`, and shown to people by `explain` and `status`. `service` is the
//! listener of the `lb-feedback-service` binary, which shares one sample between probes.

pub mod arena;
pub mod cidr;
pub mod cli;
pub mod clock;
pub mod config;
pub mod eventlog;
pub mod explain;
pub mod hash;
pub mod ioerr;
pub mod metrics;
pub mod monitors;
pub mod probe;
pub mod reply;
pub mod rules;
pub mod service;
pub mod short_help;
pub mod socket;
pub mod state;
pub mod status;
pub mod syslog;
pub mod words;
