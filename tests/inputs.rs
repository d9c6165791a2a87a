//! Inputs the binary must take calmly: a stderr that cannot be written, and (under xinetd) a
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

/// The binary as [`agent`] prepares it, with its address space limited to `kib` KiB.
fn limited(dir: &TempDir, kib: u64) -> Command {
    let mut command = prepared("/bin/sh", dir);
    command.args(["-c", &format!("ulimit -v {kib} && exec \"$0\""), BIN]);
    command
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
    // A 48 MB state_dir fits in memory once (the file read) but not twice (the parsed path),
    // so the allocation fails and Rust's runtime prints its own message on stderr.
    let long = "a".repeat(48 << 20);
    dir.file("config.json", &format!("{{\"state_dir\": \"/{long}\"}}"));
    let limit = 80 * 1024;
    // By hand the message is there: the path is real.
    let output = limited(&dir, limit).output().unwrap();
    assert!(
        stderr(&output).contains("memory allocation of"),
        "{output:?}"
    );
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
