//! `lb-feedback-service run --http`: a real `promtool check metrics` on a scrape, `/load` for
//! every mode (set with `lb-feedback mode` on the same state directory), `allow` on the HTTP
//! port, and slow, silent and garbage HTTP clients that cannot stall the agent port.
//!
//! Each test starts its own service on ephemeral 127.0.0.1 ports with `--verbose` (the log
//! says where it listens); they take turns (`SERIAL`), as tests/service.rs's do. Every wait
//! is bounded; every child is killed and reaped.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/service.rs"]
mod service;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{TempDir, agent, connect_from};
use service::Service;

const BOUND: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `GET path` on the service's HTTP port from 127.0.0.1.
fn get(service: &Service, path: &str) -> (u16, String) {
    get_from([127, 0, 0, 1], service.http(), path)
}

/// `GET path` from `source`: the status and the body.
fn get_from(source: [u8; 4], to: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = connect_from(source, to);
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, body.to_string())
}

/// No byte before the end, whether the end is a FIN or a reset.
fn nothing_comes(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => bytes.is_empty(),
        Err(err) => err.kind() == ErrorKind::ConnectionReset && bytes.is_empty(),
    }
}

/// `promtool check metrics` on `text`: it must pass with nothing to say.
fn promtool_accepts(text: &str) {
    let mut promtool = Command::new(e2e::program("promtool").unwrap())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool: {checked:?}\n{text}"
    );
}

#[test]
fn a_scrape_passes_promtool_and_carries_the_figures() {
    if !e2e::available(
        "a_scrape_passes_promtool_and_carries_the_figures",
        &["promtool"],
    ) {
        return;
    }
    let _turn = serial();
    let dir = TempDir::new("http-metrics");
    dir.file(
        "config.json",
        r#"{"tcp": [{"port": 3389, "max_connections": 50, "threshold": 95}],
            "pressure": [{"resource": "cpu", "on_error": "ignore"}],
            "profiles": {"web": {"cpu": {"threshold": 90}}}}"#,
    );
    let service = Service::run(&dir)
        .http()
        .envs(&[("LB_FEEDBACK_SAMPLE_MS", "1000")])
        .start();
    assert!(service.poll().ends_with("%\n"));
    let (status, text) = get(&service, "/metrics");
    assert_eq!(status, 200, "{text}");
    promtool_accepts(&text);
    for line in [
        "lb_feedback_polls_answered_total 1",
        "lb_feedback_state{profile=\"(base)\",state=\"ready\"} 1",
        "lb_feedback_monitor_threshold_percent{profile=\"(base)\",monitor=\"tcp\",port=\"3389\"} 95",
        "lb_feedback_monitor_threshold_percent{profile=\"web\",monitor=\"cpu\"} 90",
        "lb_feedback_pollers 1",
        "lb_feedback_pollers_owed_recovery 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("lb_feedback_reply_percent{profile=\"(base)\"} ")),
        "{text}"
    );
    // The pressure monitor's series, labelled by the registry (where the kernel has PSI).
    let pressure = "lb_feedback_monitor_load_percent{profile=\"(base)\",monitor=\"pressure\",\
                    resource=\"cpu\",kind=\"some\"} ";
    if std::path::Path::new("/proc/pressure/cpu").is_file() {
        assert!(
            text.lines().any(|l| l.starts_with(pressure)),
            "no {pressure:?} in\n{text}"
        );
    }

    // Under the kept sampler a scrape is answered from the last window, at once.
    let mut took: Vec<Duration> = (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            let asked = Instant::now();
            assert_eq!(get(&service, "/metrics").0, 200);
            asked.elapsed()
        })
        .collect();
    took.sort();
    eprintln!(
        "/metrics under the kept sampler: median {:?}, slowest {:?} of 20",
        took[10], took[19]
    );
    assert!(took[19] < Duration::from_millis(500), "{took:?}");

    // Drained: no percent and no monitor figures (nothing is sampled), still valid.
    let output = agent(&dir).args(["mode", "drain"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let (status, text) = get(&service, "/metrics");
    assert_eq!(status, 200);
    promtool_accepts(&text);
    assert!(text.contains("lb_feedback_state{profile=\"web\",state=\"drain\"} 1"));
    assert!(!text.contains("lb_feedback_reply_percent{"), "{text}");
    assert!(
        !text.contains("lb_feedback_monitor_load_percent{"),
        "{text}"
    );
}

#[test]
fn load_says_busy_or_101_or_102_as_the_mode_changes() {
    let _turn = serial();
    let dir = TempDir::new("http-load");
    let env = [
        ("LB_FEEDBACK_CPU_IMPORTANCE", "0"),
        ("LB_FEEDBACK_RAM_IMPORTANCE", "0"),
    ];
    let service = Service::run(&dir).http().envs(&env).start();
    let mode = |args: &[&str]| {
        let output = agent(&dir).arg("mode").args(args).output().unwrap();
        assert!(output.status.success(), "{output:?}");
    };
    // Nothing counts: 100 % idle, 0 busy; what HAProxy gets is the same figure inverted.
    assert_eq!(get(&service, "/load"), (200, "0\n".into()));
    assert!(service.poll().ends_with("100%\n"));
    for (word, load) in [("drain", "102\n"), ("maint", "102\n"), ("stop", "101\n")] {
        mode(&[word]);
        assert_eq!(get(&service, "/load"), (200, load.into()), "mode {word}");
    }
    mode(&["normal"]);
    assert_eq!(get(&service, "/load"), (200, "0\n".into()));
    let (status, body) = get(&service, "/status");
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["mode"], "normal");
    assert_eq!(get(&service, "/health"), (200, "ok\n".into()));
    assert_eq!(get(&service, "/nothing").0, 404);
}

#[test]
fn allow_holds_on_the_http_port() {
    let _turn = serial();
    let dir = TempDir::new("http-allow");
    let service = Service::run(&dir)
        .http()
        .args(&["--allow", "127.0.0.2/32"])
        .start();
    let mut refused = connect_from([127, 0, 0, 1], service.http());
    let _ = refused.write_all(b"GET /health HTTP/1.1\r\n\r\n");
    assert!(nothing_comes(&mut refused));
    service.wait_for_log("HTTP: 127.0.0.1:");
    assert_eq!(
        get_from([127, 0, 0, 2], service.http(), "/health"),
        (200, "ok\n".into())
    );
}

#[test]
fn slow_silent_and_garbage_http_clients_do_not_stall_the_agent_port() {
    let _turn = serial();
    let dir = TempDir::new("http-flood");
    let service = Service::run(&dir)
        .http()
        .envs(&[("LB_FEEDBACK_SAMPLE_MS", "500")])
        .start();
    assert!(service.poll().ends_with("%\n"));
    // More silent clients than the HTTP port has slots, a slow one dripping a header that
    // never ends, and garbage.
    let silent: Vec<TcpStream> = (0..80)
        .map(|_| connect_from([127, 0, 0, 1], service.http()))
        .collect();
    let mut drip = connect_from([127, 0, 0, 3], service.http());
    drip.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let mut garbage = connect_from([127, 0, 0, 4], service.http());
    garbage
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n")
        .unwrap();
    let mut huge = connect_from([127, 0, 0, 5], service.http());
    let _ = huge.write_all(format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000)).as_bytes());
    service.wait_for_log("HTTP: 127.0.0.1:");

    // Meanwhile the agent port answers every poll at once.
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(2) {
        let asked = Instant::now();
        assert!(service.poll().ends_with("%\n"));
        assert!(asked.elapsed() < Duration::from_millis(500));
        let _ = drip.write_all(b"x");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another address still gets an HTTP answer: the last slots are kept for it.
    assert_eq!(
        get_from([127, 0, 0, 6], service.http(), "/health"),
        (200, "ok\n".into())
    );
    let mut answer = String::new();
    garbage.set_read_timeout(Some(BOUND)).unwrap();
    let _ = garbage.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    let mut answer = String::new();
    huge.set_read_timeout(Some(BOUND)).unwrap();
    let _ = huge.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    // The dripping client is let go at its deadline (sample_ms + 2 s), unanswered.
    let since = Instant::now();
    assert!(nothing_comes(&mut drip));
    assert!(since.elapsed() < Duration::from_secs(3));
    drop(silent);
    assert!(service.poll().ends_with("%\n"));
}

#[test]
fn the_service_reads_sessions_every_window_and_lists_them_in_metrics() {
    let _turn = serial();
    let dir = TempDir::new("http-sessions");
    // logind's records in a fixture tree: 4 user sessions, one of them closing (logged out,
    // processes left), and a greeter that does not count.
    let root = dir.path().join("root");
    let records = root.join("run/systemd/sessions");
    std::fs::create_dir_all(&records).unwrap();
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let write = |id: &str, class: &str, state: &str| {
        let text = format!("UID=1000\nUSER=ann\nSTATE={state}\nCLASS={class}\nREMOTE=1\n");
        std::fs::write(records.join(id), text).unwrap();
    };
    for (id, class, state) in [
        ("1", "user", "active"),
        ("2", "user", "active"),
        ("3", "user", "online"),
        ("4", "user", "closing"),
        ("c1", "greeter", "active"),
    ] {
        write(id, class, state);
    }
    let root_text = root.to_str().unwrap();
    let service = Service::run(&dir)
        .http()
        .envs(&[
            ("LB_FEEDBACK_TEST_SESSIONS_ROOT", root_text),
            ("LB_FEEDBACK_CPU_IMPORTANCE", "0"),
            ("LB_FEEDBACK_RAM_IMPORTANCE", "0"),
            ("LB_FEEDBACK_RECOVERY", "never"),
        ])
        .args(&["--sessions", "50"])
        .start();
    // 4 of 50: load 8.
    assert_eq!(service.poll(), "92%\n");
    let (status, text) = get(&service, "/metrics");
    assert_eq!(status, 200, "{text}");
    let line = "lb_feedback_monitor_load_percent{profile=\"(base)\",monitor=\"sessions\"} 8";
    assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    // A fifth session: a later window reads it, without a restart.
    write("5", "user", "active");
    let until = Instant::now() + BOUND;
    loop {
        let reply = service.poll();
        if reply == "90%\n" {
            break;
        }
        assert_eq!(reply, "92%\n");
        assert!(
            Instant::now() < until,
            "the fifth session was never counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
