//! The Debian package as installed by `dpkg -i`: its xinetd entry, enabled the way the entry's
//! comment tells an admin to, answers on 127.0.0.1:3333 and a real HAProxy follows it.
//!
//! That test runs only with LB_FEEDBACK_INSTALLED=1 (contrib/deb/ci.sh sets it after
//! installing the .deb) and reads and writes the installed files: /etc/xinetd.d/lb-feedback,
//! /etc/services, /usr/bin/lb-feedback with its default config and state directory. It leaves
//! the runtime mode as it found it. The check that the packaged entry is the contrib one
//! always runs.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/e2e.rs"]
mod e2e;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::TempDir;
use e2e::{Agent, Backend, Haproxy, Server, poll, render_xinetd_entry, xinetd_conf};

const PACKAGED_XINETD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/deb/xinetd-lb-feedback"
);
const INSTALLED_BIN: &str = "/usr/bin/lb-feedback";
const STATE_DIR: &str = "/var/lib/lb-feedback";
const CONTRIB_SERVICES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/xinetd/services");

/// The service block of an xinetd entry, without the header comment.
fn service_block(text: &str) -> &str {
    let start = text.find("service lb-feedback").expect("no service block");
    &text[start..]
}

#[test]
fn packaged_xinetd_entry_is_the_contrib_one_disabled() {
    let contrib = fs::read_to_string(e2e::CONTRIB_XINETD).unwrap();
    let packaged = fs::read_to_string(PACKAGED_XINETD).unwrap();
    let expected = render_xinetd_entry(service_block(&contrib), &[("disable", "yes".into())], &[]);
    let packaged = service_block(&packaged).replace(
        "\t# Shipped disabled: set \"no\" to serve the agent through xinetd.\n",
        "",
    );
    assert_eq!(packaged, expected);
}

fn owner(path: &str) -> String {
    let output = Command::new("stat")
        .args(["-c", "%U:%G", path])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// `lb-feedback mode ...` as an admin runs it: the installed binary, its default config
/// (/etc/lb-feedback/config.json) and state directory (/var/lib/lb-feedback).
fn installed_mode(args: &[&str]) -> String {
    let output = Command::new(INSTALLED_BIN)
        .env_clear()
        .arg("mode")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "mode {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Puts back the runtime mode the machine had before the test.
struct RestoreMode(Option<String>);

impl Drop for RestoreMode {
    fn drop(&mut self) {
        let path = Path::new(STATE_DIR).join("mode.json");
        match &self.0 {
            Some(text) => drop(fs::write(&path, text)),
            None => drop(fs::remove_file(&path)),
        }
    }
}

#[test]
fn installed_package_answers_on_3333_through_xinetd_and_haproxy_follows() {
    if std::env::var_os("LB_FEEDBACK_INSTALLED").is_none_or(|v| v != "1") {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: installed-package test (LB_FEEDBACK_INSTALLED=1 after installing the .deb; contrib/deb/ci.sh does both)"
        );
        return;
    }
    if !e2e::available(
        "installed_package_answers_on_3333_through_xinetd_and_haproxy_follows",
        &["haproxy", "xinetd"],
    ) {
        return;
    }

    // What the package put in place.
    let entry = fs::read_to_string("/etc/xinetd.d/lb-feedback").unwrap();
    assert!(entry.contains("\tdisable\t\t= yes\n"), "installed enabled");
    let services = fs::read_to_string("/etc/services").unwrap();
    let line = fs::read_to_string(CONTRIB_SERVICES).unwrap();
    assert_eq!(services.matches(line.as_str()).count(), 1, "{services}");
    assert_eq!(owner(STATE_DIR), "nobody:nogroup");
    for path in [
        "/etc/lb-feedback/config.json",
        "/usr/lib/systemd/system/lb-feedback.socket",
        "/usr/lib/systemd/system/lb-feedback@.service",
        "/usr/lib/tmpfiles.d/lb-feedback.conf",
        "/usr/share/doc/lb-feedback/README.md",
    ] {
        assert!(Path::new(path).is_file(), "{path} not installed");
    }
    let _restore = RestoreMode(fs::read_to_string(Path::new(STATE_DIR).join("mode.json")).ok());

    // The installed entry as the admin enables it (disable = no), run by an xinetd of the
    // test's own so nothing in /etc changes. Its port comes from the /etc/services line the
    // package added; only `bind` is added, so the test listens on loopback alone.
    let dir = TempDir::new("installed");
    let rendered = render_xinetd_entry(
        &entry,
        &[("disable", "no".into())],
        &[("bind", "127.0.0.1".into())],
    );
    let conf = xinetd_conf(&dir, &dir.file("lb-feedback", &rendered));
    let agent = Agent::xinetd_with(&dir, &conf, 3333);

    // One poll by hand, as `socat - TCP:127.0.0.1:3333` would: one valid line from the agent
    // running as nobody, whose first poll opens the recovery window in the state directory
    // the package made for it. (Stamps an earlier run left are removed first, so this is a
    // first poll again; that only reopens a recovery window.)
    for entry in fs::read_dir(STATE_DIR).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("last-non-normal") {
            fs::remove_file(&path).unwrap();
        }
    }
    let reply = poll(3333);
    let percent = reply
        .strip_prefix("up ready ")
        .and_then(|rest| rest.strip_suffix("%\n"))
        .and_then(|n| n.parse::<u8>().ok());
    assert!(percent.is_some_and(|n| n <= 100), "{reply:?}");
    assert_eq!(
        owner(&format!("{STATE_DIR}/last-non-normal")),
        "nobody:nogroup"
    );

    // A real HAProxy polling it: the weight the agent gives, then drain and back through the
    // installed `lb-feedback mode`.
    let backend = Backend::start();
    let haproxy = Haproxy::start(
        &dir,
        &[format!(
            "server s1 {} weight 100 check inter 1s agent-check agent-port 3333 agent-inter 1s",
            backend.addr()
        )],
    );
    let s1 = haproxy.wait_server("s1", "the agent's `up ready N%`", &agent, |s| {
        s.last_agent == "via agent : up"
    });
    assert!(s1.up() && s1.ready() && s1.weight <= 100, "{s1:#?}");

    installed_mode(&["drain"]);
    haproxy.wait_server("s1", "DRAIN", &agent, Server::drain);
    installed_mode(&["normal"]);
    haproxy.wait_server("s1", "READY", &agent, |s| s.ready() && s.up());
    installed_mode(&["reset"]);
}
