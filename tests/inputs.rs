//! Inputs the binary must take calmly: a config with many profiles, a byte order mark, a
//! state directory no file can have, a stderr that cannot be written, and (under xinetd) a
//! stderr that is the connection to HAProxy.
#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, TempDir, agent, prepared, stderr, stdout};
use lb_feedback::config::MAX_PROFILES;

/// A config of `n` profiles, one a line after the opening line, each watching a port.
fn profiles(n: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            let port = 1000 + i % 50;
            format!("\"p{i}\": {{\"tcp\": [{{\"port\": {port}, \"max_connections\": 10}}]}}")
        })
        .collect();
    format!(
        "{{\"cpu\": {{\"importance\": 0}}, \"ram\": {{\"importance\": 0}}, \"profiles\": {{\n{}\n}}}}\n",
        entries.join(",\n")
    )
}

/// The binary as [`agent`] prepares it, with its address space limited to `kib` KiB.
fn limited(dir: &TempDir, kib: u64) -> Command {
    let mut command = prepared("/bin/sh", dir);
    command.args(["-c", &format!("ulimit -v {kib} && exec \"$0\""), BIN]);
    command
}

#[test]
fn a_probe_with_the_most_profiles_stays_small() {
    let dir = TempDir::new("many");
    dir.file("config.json", &profiles(MAX_PROFILES));
    // Building every profiled config took 300 MB here (2,000 profiles: 1.2 GB); the probe
    // itself needs a few MB.
    let output = limited(&dir, 64 * 1024)
        .env("LB_FEEDBACK_RECOVERY", "never")
        .output()
        .unwrap();
    assert_eq!(stdout(&output), "100%\n", "{}", stderr(&output));
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn more_profiles_than_the_limit_is_a_config_error_with_its_place() {
    let dir = TempDir::new("too-many");
    let path = dir.file("config.json", &profiles(2000));
    let output = agent(&dir).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(stdout(&output), "error:config\n");
    // The first name too many is on line 2 + MAX_PROFILES; its column is its closing quote.
    assert_eq!(
        stderr(&output),
        format!(
            "lb-feedback: {}:{}:7: more than {MAX_PROFILES} profiles (the most one config may hold)\n",
            path.display(),
            MAX_PROFILES + 2
        )
    );
}

/// Starts `command` with one end of a loopback connection as stdin, stdout and stderr, as
/// xinetd does, and returns every byte that arrived on the other end.
fn over_socket(mut command: Command) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let fd: OwnedFd = server.into();
    let mut child = command
        .stdin(Stdio::from(fd.try_clone().unwrap()))
        .stdout(Stdio::from(fd.try_clone().unwrap()))
        .stderr(Stdio::from(fd))
        .spawn()
        .unwrap();
    // The command holds copies of the descriptors: without this the socket never closes.
    drop(command);
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut bytes = Vec::new();
    client.read_to_end(&mut bytes).unwrap();
    child.wait().unwrap();
    bytes
}

#[test]
fn nothing_rust_prints_on_stderr_reaches_the_socket() {
    let dir = TempDir::new("alloc");
    // A state_dir of 1 MB (the config file's limit is 1 MiB) under an address space just
    // too small for it: the allocation fails and Rust's runtime prints its own message on
    // stderr. Where "just too small" lies depends on the build and the C library, so it is
    // searched, from too small to start at all, in steps smaller than the path.
    let long = "a".repeat(1_000_000);
    dir.file("config.json", &format!("{{\"state_dir\": \"/{long}\"}}"));
    // By hand the message is there: the path is real.
    let limit = (16..256)
        .map(|quarters| quarters * 256)
        .find(|&kib| {
            let output = limited(&dir, kib).output().unwrap();
            stderr(&output).contains("memory allocation of")
        })
        .expect("no address space limit made the allocation fail");
    // Under xinetd it must not reach HAProxy.
    let bytes = over_socket(limited(&dir, limit));
    assert_eq!(String::from_utf8_lossy(&bytes), "");
}

#[test]
fn a_stderr_that_cannot_be_written_keeps_the_exit_code() {
    let dir = TempDir::new("full");
    let full = || Stdio::from(File::options().write(true).open("/dev/full").unwrap());
    let output = agent(&dir).arg("--bogus").stderr(full()).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    dir.file("config.json", "{\"mode\": 1}");
    let output = agent(&dir).stderr(full()).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(stdout(&output), "error:config\n");
}

#[test]
fn a_byte_order_mark_is_accepted_and_a_nul_in_state_dir_is_not() {
    let dir = TempDir::new("bom");
    dir.file("config.json", "\u{feff}{\"recovery_seconds\": 7}\r\n");
    let output = agent(&dir).arg("check-config").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("\"recovery_seconds\": 7"));
    let path = dir.file("config.json", "\u{feff}{\"state_dir\": \"/tmp/x\\u0000\"}");
    let output = agent(&dir)
        .env_remove("LB_FEEDBACK_STATE_DIR")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        stderr(&output),
        format!(
            "lb-feedback: {}:1:29: state_dir must not contain a NUL byte (no file name can)\n",
            path.display()
        )
    );
}
