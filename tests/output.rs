//! Standard output that cannot take what is written (`>/dev/full`): every command that prints
//! fails with a message on stderr instead of exiting 0 with a truncated file; a pipe closed by
//! its reader (`| head`) fails without one.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/service.rs"]
mod service;

use std::fs::OpenOptions;
use std::process::Stdio;

use common::{TempDir, agent, stderr};

fn full() -> Stdio {
    OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

#[test]
fn every_printing_command_fails_on_a_full_stdout() {
    let dir = TempDir::new("out-full");
    let runs: &[&[&str]] = &[
        &["--explain"],
        &["--explain", "--json"],
        &["status"],
        &["status", "--json"],
        &["check-config"],
        &["--help"],
        &["-h"],
        &["--version"],
        &["mode"],
        &[],
    ];
    for args in runs {
        let output = agent(&dir).args(*args).stdout(full()).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(
            stderr(&output),
            "lb-feedback: cannot write to standard output: No space left on device\n",
            "{args:?}"
        );
    }
    for args in [&["--help"][..], &["--version"]] {
        let output = service::command(&dir, &[], args)
            .stdout(full())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(
            stderr(&output),
            "lb-feedback-service: cannot write to standard output: No space left on device\n",
            "{args:?}"
        );
    }
}

#[test]
fn a_pipe_closed_by_its_reader_fails_quietly() {
    let dir = TempDir::new("out-closed");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = agent(&dir)
        .arg("--help")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "");
}
