//! Custom monitors with real sources: commands (one that hangs with a child of its own, one
//! that prints garbage, one that writes a lot, one that fails), a real file (fresh and stale),
//! a real HTTP server on 127.0.0.1 (a plain number, JSON with a pointer, a 500, a slow one),
//! each with the exact reply; profiles chosen by `agent-send`; and lb-feedback-service, which
//! reads them once a window and lists them in `/metrics`.

mod common;
#[path = "common/service.rs"]
mod service;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use common::{TempDir, agent, serve, stderr, stdout};
use service::Service;

/// Far longer than any source here takes, far shorter than a hung one would.
const BOUND: Duration = Duration::from_secs(10);

/// A real HTTP/1.1 server on 127.0.0.1: `/plain` is `20`, `/json` a JSON document with 20 at
/// `/load`, `/fail` a 500, `/slow` answers after 5 s; one thread per connection.
fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_http(stream));
        }
    });
    addr
}

fn answer_http(mut stream: TcpStream) {
    let mut head = String::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let _ = reader.read_line(&mut head);
    // The rest of the request head, up to its empty line.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    let (status, body) = match path.as_str() {
        "/plain" => ("200 OK", "20\n".to_string()),
        "/json" => ("200 OK", r#"{"sessions": 3, "load": 20}"#.to_string()),
        "/fail" => ("500 Internal Server Error", "35\n".to_string()),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            ("200 OK", "10\n".to_string())
        }
        "/big" => ("200 OK", "7 ".repeat(40_000)),
        _ => ("404 Not Found", String::new()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `lb-feedback` by hand with this config: CPU and RAM off, the custom list given.
fn probe_with(dir: &TempDir, custom: &str, args: &[&str]) -> (Output, Duration) {
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}}, "recovery": "never",
                "custom": {custom}}}"#
        ),
    );
    let started = Instant::now();
    let output = agent(dir).args(args).output().unwrap();
    (output, started.elapsed())
}

fn reply(dir: &TempDir, custom: &str) -> String {
    let (output, _) = probe_with(dir, custom, &[]);
    stdout(&output)
}

/// Whether the process is gone: no such process, or a zombie nobody reaped yet (killed all
/// the same). Waits a little for the kernel to finish the kill.
fn gone(pid: &str) -> bool {
    let until = Instant::now() + BOUND;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        let dead = match stat {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        };
        if dead || Instant::now() > until {
            return dead;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn json_string(path: &Path) -> String {
    serde_json::to_string(path.to_str().unwrap()).unwrap()
}

#[test]
fn a_command_a_file_and_json_over_http_answer_seventy() {
    let dir = TempDir::new("custom-accept");
    let http = http_server();
    let file = dir.file("queue-depth", "30\n");
    let custom = format!(
        r#"[{{"name": "rds", "command": ["/bin/echo", "20"], "max": 50, "timeout_ms": 5000}},
            {{"name": "queue", "file": {}, "max_age_seconds": 30}},
            {{"name": "app", "http": "http://{http}/json", "json_pointer": "/load", "timeout_ms": 5000}}]"#,
        json_string(&file)
    );
    // 20 of 50 is 40, 30 of 100 is 30, 20 of 100 is 20: a load of 30, 70% idle.
    let (output, _) = probe_with(&dir, &custom, &[]);
    assert_eq!(stdout(&output), "70%\n");
    assert_eq!(stderr(&output), "");
    // --explain --json: each value, its source and how long it took.
    let (output, _) = probe_with(&dir, &custom, &["--explain", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let monitors = report["monitors"].as_array().unwrap();
    let names: Vec<&str> = monitors
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rds", "queue", "app"]);
    assert_eq!(monitors[0]["value"], 20.0);
    assert_eq!(monitors[0]["load"], 40.0);
    assert_eq!(monitors[0]["figure"], "20 of max 50");
    assert_eq!(monitors[0]["source"], r#"command ["/bin/echo", "20"]"#);
    assert_eq!(
        monitors[1]["source"],
        format!("file {}", file.display()).as_str()
    );
    assert_eq!(
        monitors[2]["source"],
        format!("http http://{http}/json at \"/load\"").as_str()
    );
    for monitor in monitors {
        assert!(monitor["took_ms"].as_f64().unwrap() >= 0.0, "{monitor}");
    }
    assert_eq!(report["reply"], "70%");
    // The text form shows the same.
    let (output, _) = probe_with(&dir, &custom, &["--explain"]);
    let text = stdout(&output);
    assert!(text.contains("rds "), "{text}");
    assert!(
        text.contains(r#"20 of max 50; command ["/bin/echo", "20"], took "#),
        "{text}"
    );
    assert!(text.ends_with("reply       70%\n"), "{text}");
}

#[test]
fn a_hung_command_is_killed_with_its_child_at_its_timeout() {
    let dir = TempDir::new("custom-hang");
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 300 & echo $! > {p}.child; echo $$ > {p}.shell; sleep 300",
        p = pids.display()
    );
    let custom = format!(
        r#"[{{"name": "hang", "command": ["/bin/sh", "-c", {}], "timeout_ms": 300}}]"#,
        serde_json::to_string(&script).unwrap()
    );
    let (output, took) = probe_with(&dir, &custom, &[]);
    assert_eq!(stdout(&output), "error:hang\n");
    // Not held for the 300 s the command would take.
    assert!(took < BOUND, "{took:?}");
    let shell = std::fs::read_to_string(pids.with_extension("shell")).unwrap();
    let child = std::fs::read_to_string(pids.with_extension("child")).unwrap();
    assert!(gone(&shell), "the command {shell} is still running");
    assert!(gone(&child), "the command's child {child} is still running");
    // By hand the reason reaches stderr.
    assert!(
        stderr(&output).contains("hang: command [\"/bin/sh\"")
            && stderr(&output).contains("did not finish within its timeout; killed"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn garbage_a_flood_and_a_failing_command_are_errors_unless_ignored() {
    let dir = TempDir::new("custom-bad");
    let one = |entry: &str| reply(&dir, &format!("[{entry}]"));
    assert_eq!(
        one(r#"{"name": "garb", "command": ["/bin/echo", "garbage!"], "timeout_ms": 5000}"#),
        "error:garb\n"
    );
    let pid = dir.path().join("yes.pid");
    let flood = format!("echo $$ > {}; exec yes 12", pid.display());
    assert_eq!(
        one(&format!(
            r#"{{"name": "lots", "command": ["/bin/sh", "-c", {}], "timeout_ms": 5000}}"#,
            serde_json::to_string(&flood).unwrap()
        )),
        "error:lots\n"
    );
    assert!(gone(&std::fs::read_to_string(&pid).unwrap()));
    assert_eq!(
        one(
            r#"{"name": "exit3", "command": ["/bin/sh", "-c", "echo 5; exit 3"], "timeout_ms": 5000}"#
        ),
        "error:exit3\n"
    );
    assert_eq!(
        one(r#"{"name": "none", "command": ["/nonexistent/count"], "timeout_ms": 5000}"#),
        "error:none\n"
    );
    // Ignored, the failing monitor is left out: only the 25 of 100 counts.
    assert_eq!(
        reply(
            &dir,
            r#"[{"name": "garb", "command": ["/bin/echo", "garbage!"], "on_error": "ignore", "timeout_ms": 5000},
                {"name": "ok", "command": ["/bin/echo", "25"], "timeout_ms": 5000}]"#
        ),
        "75%\n"
    );
    let (output, _) = probe_with(
        &dir,
        r#"[{"name": "garb", "command": ["/bin/echo", "garbage!"], "on_error": "ignore", "timeout_ms": 5000}]"#,
        &["--explain"],
    );
    assert!(
        stdout(&output).contains("ignored     garb: no number in \"garbage!\" (on_error ignore)"),
        "{}",
        stdout(&output)
    );
    // A threshold with importance 0 only drains.
    assert_eq!(
        one(
            r#"{"name": "gate", "command": ["/bin/echo", "48"], "max": 50, "importance": 0, "threshold": 95, "timeout_ms": 5000}"#
        ),
        "drain #gate:96>=95\n"
    );
    assert_eq!(
        one(
            r#"{"name": "gate", "command": ["/bin/echo", "40"], "max": 50, "importance": 0, "threshold": 95, "timeout_ms": 5000}"#
        ),
        "100%\n"
    );
}

#[test]
fn a_file_answers_while_fresh_and_fails_once_stale() {
    let dir = TempDir::new("custom-file");
    let file = dir.file("queue-depth", "queue 50\n");
    let custom = format!(
        r#"[{{"name": "queue", "file": {}, "max": 200, "max_age_seconds": 30}}]"#,
        json_string(&file)
    );
    assert_eq!(reply(&dir, &custom), "75%\n");
    let old = SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(reply(&dir, &custom), "error:queue\n");
    let (output, _) = probe_with(&dir, &custom, &[]);
    assert!(
        stderr(&output).contains("more than max_age_seconds 30"),
        "{}",
        stderr(&output)
    );
    // Without max_age_seconds age does not matter; a missing file or a directory fails.
    let ageless = format!(r#"[{{"name": "queue", "file": {}}}]"#, json_string(&file));
    assert_eq!(reply(&dir, &ageless), "50%\n");
    let missing = r#"[{"name": "queue", "file": "/nonexistent/queue"}]"#;
    assert_eq!(reply(&dir, missing), "error:queue\n");
    let directory = format!(
        r#"[{{"name": "queue", "file": {}}}]"#,
        json_string(dir.path())
    );
    assert_eq!(reply(&dir, &directory), "error:queue\n");
}

#[test]
fn http_sources_a_number_a_pointer_a_500_a_slow_one_and_a_big_one() {
    let dir = TempDir::new("custom-http");
    let http = http_server();
    let entry = |path: &str, extra: &str| {
        reply(
            &dir,
            &format!(
                r#"[{{"name": "app", "http": "http://{http}{path}", "timeout_ms": 5000{extra}}}]"#
            ),
        )
    };
    assert_eq!(entry("/plain", ""), "80%\n");
    assert_eq!(entry("/json", r#", "json_pointer": "/load""#), "80%\n");
    assert_eq!(entry("/json", r#", "json_pointer": "/sessions""#), "97%\n");
    assert_eq!(
        entry("/json", r#", "json_pointer": "/none""#),
        "error:app\n"
    );
    assert_eq!(entry("/fail", ""), "error:app\n");
    assert_eq!(entry("/missing", ""), "error:app\n");
    assert_eq!(entry("/big", ""), "error:app\n");
    // The slow one is given up at its timeout, not waited 5 s for.
    let slow = format!(r#"[{{"name": "app", "http": "http://{http}/slow", "timeout_ms": 300}}]"#);
    let (output, took) = probe_with(&dir, &slow, &[]);
    assert_eq!(stdout(&output), "error:app\n");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = format!(r#"[{{"name": "app", "http": "http://{closed}/", "timeout_ms": 5000}}]"#);
    assert_eq!(reply(&dir, &refused), "error:app\n");
}

#[test]
fn a_profile_replaces_the_custom_list() {
    let dir = TempDir::new("custom-profile");
    dir.file(
        "config.json",
        r#"{"cpu": {"importance": 0}, "ram": {"importance": 0}, "recovery": "never",
            "custom": [{"name": "base", "command": ["/bin/echo", "10"], "timeout_ms": 5000}],
            "profiles": {"app": {"custom": [{"name": "app", "command": ["/bin/echo", "60"], "timeout_ms": 5000}]},
                         "plain": {}}}"#,
    );
    let poll = |send: &str| {
        let (mut client, mut child) = serve(agent(&dir));
        client.write_all(send.as_bytes()).unwrap();
        common::reply(&mut client, &mut child)
    };
    assert_eq!(poll("app\n"), "40%\n");
    assert_eq!(poll("plain\n"), "90%\n");
}

/// A scrape of the service's `/metrics`.
fn metrics(service: &Service) -> String {
    let mut stream = TcpStream::connect_timeout(&service.http(), BOUND).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn the_service_runs_sources_once_a_window_and_lists_them_in_metrics() {
    let dir = TempDir::new("custom-service");
    let runs = dir.path().join("runs");
    let count = format!("echo run >> {}; echo 20", runs.display());
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}}, "recovery": "never",
                "custom": [{{"name": "rds", "command": ["/bin/sh", "-c", {}], "max": 50, "timeout_ms": 5000}}]}}"#,
            serde_json::to_string(&count).unwrap()
        ),
    );
    let service = Service::run(&dir)
        .http()
        .envs(&[("LB_FEEDBACK_SAMPLE_MS", "500")])
        .start();
    let polls = 12;
    for _ in 0..polls {
        assert_eq!(service.poll(), "60%\n");
    }
    let metrics = metrics(&service);
    assert!(
        metrics.contains("lb_feedback_monitor_load_percent{profile=\"(base)\",monitor=\"rds\"} 40"),
        "{metrics}"
    );
    drop(service);
    // Once per window of 500 ms, not once per poll: twelve polls take far less than six
    // windows, so fewer runs than polls.
    let ran = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!(ran >= 1 && ran < polls, "{ran} runs for {polls} polls");
}

/// `sh -c SCRIPT` as a custom monitor's command, out of 50.
fn shell_monitor(script: &str) -> String {
    format!(
        r#"[{{"name": "queue", "command": ["/bin/sh", "-c", {}], "max": 50, "timeout_ms": 3000}}]"#,
        serde_json::to_string(script).unwrap()
    )
}

#[test]
fn a_command_that_exits_leaving_a_child_with_its_output_answers_at_once() {
    let dir = TempDir::new("custom-leaves-child");
    let pid = dir.path().join("child");
    // The child keeps the pipe open for 601 s, in the command's group.
    let script = format!("sleep 601 & echo $! > {}; echo 5", pid.display());
    let (output, took) = probe_with(&dir, &shell_monitor(&script), &[]);
    assert_eq!(stdout(&output), "90%\n", "{}", stderr(&output));
    assert!(took < BOUND, "{took:?}");
    let child = std::fs::read_to_string(&pid).unwrap();
    assert!(gone(&child), "the command's child {child} is still running");
}

/// How many threads and descriptors process `pid` has.
#[cfg(target_os = "linux")]
fn threads_and_fds(pid: u32) -> (usize, usize) {
    let count = |dir: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{dir}"))
            .unwrap()
            .count()
    };
    (count("task"), count("fd"))
}

#[cfg(target_os = "linux")]
#[test]
fn the_one_shot_kills_what_a_command_started_with_setsid_before_it_exits() {
    let dir = TempDir::new("custom-setsid-once");
    let pids = dir.path().join("escaped");
    let script = format!("setsid sleep 600 & echo $! >> {}; echo 5", pids.display());
    assert_eq!(reply(&dir, &shell_monitor(&script)), "90%\n");
    let escaped = std::fs::read_to_string(&pids).unwrap();
    let pid = escaped.trim();
    assert!(!pid.is_empty(), "the command recorded no child");
    assert!(gone(pid), "the escaped {pid} outlived the probe");
}

#[cfg(target_os = "linux")]
#[test]
fn the_service_kills_what_a_command_started_with_setsid_and_stays_flat() {
    let dir = TempDir::new("custom-setsid");
    let pids = dir.path().join("escaped");
    // Each run leaves a `sleep 600` in a session of its own, holding the output pipe.
    let script = format!("setsid sleep 600 & echo $! >> {}; echo 5", pids.display());
    dir.file(
        "config.json",
        &format!(
            r#"{{"cpu": {{"importance": 0}}, "ram": {{"importance": 0}}, "recovery": "never",
                "custom": {}}}"#,
            shell_monitor(&script)
        ),
    );
    let service = Service::run(&dir)
        .envs(&[("LB_FEEDBACK_SAMPLE_MS", "200")])
        .start();
    assert_eq!(service.poll(), "90%\n", "{:?}", service.log());
    let before = threads_and_fds(service.child.id());
    // Twenty windows and more; each reply uses the 5 the command printed.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(service.poll(), "90%\n", "{:?}", service.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = threads_and_fds(service.child.id());
    let escaped = std::fs::read_to_string(&pids).unwrap();
    let escaped: Vec<&str> = escaped.lines().collect();
    assert!(escaped.len() >= 20, "{} runs", escaped.len());
    for pid in &escaped {
        assert!(gone(pid), "the escaped {pid} is still running");
    }
    assert!(
        after.0 <= before.0 + 2 && after.1 <= before.1 + 2,
        "threads and fds {before:?} at the start, {after:?} after {} runs",
        escaped.len()
    );
}
