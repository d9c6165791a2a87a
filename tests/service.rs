//! `lb-feedback-service run` against real loopback connections: the same line as the one-shot
//! binary, 200 probes sharing one sample, clients that send nothing or never read, the
//! allowlist, the in-flight limit, a clean stop on SIGTERM, both address families.
//!
//! Each test starts its own service on an ephemeral 127.0.0.1 port with `--verbose`: the
//! service logs the addresses it listens on and one line per sample, which is how the tests
//! find the port and count samples. The tests take turns (`SERIAL`): several of them measure
//! time on a two-core machine. Every wait is bounded; every child is killed and reaped.
#![cfg(unix)]

mod common;
#[path = "common/service.rs"]
mod service;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{Connections, TempDir, agent, stdout};
use service::{SERVICE, Service};

/// The longest any single step may take before the test fails instead of hanging.
const BOUND: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sample lines of the log.
fn samples(service: &Service) -> Vec<String> {
    service
        .log()
        .into_iter()
        .filter(|line| line.starts_with("lb-feedback-service: sample "))
        .collect()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, BOUND).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_write_timeout(Some(BOUND)).unwrap();
    stream
}

/// Everything the service sent up to its FIN; a reset fails the test.
fn read_all(stream: &mut TcpStream) -> String {
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .expect("the service must close with a FIN, not a reset");
    text
}

/// One poll without agent-send, the way HAProxy makes it: connect and read.
fn probe(addr: SocketAddr) -> String {
    read_all(&mut connect(addr))
}

/// What a client gets when the service closes without a reply: no byte before the end,
/// whether the end is a FIN or a reset.
fn nothing_comes(stream: &mut TcpStream) -> bool {
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => bytes.is_empty(),
        Err(err) => err.kind() == ErrorKind::ConnectionReset && bytes.is_empty(),
    }
}

fn is_percent_line(text: &str) -> bool {
    text.strip_suffix("%\n")
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| n <= 100)
}

fn tcp_only(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("LB_FEEDBACK_CPU_IMPORTANCE", "0".into()),
        ("LB_FEEDBACK_RAM_IMPORTANCE", "0".into()),
        ("LB_FEEDBACK_TCP", format!("{port}:10")),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The one-shot binary with a fresh connection as its stdin, stdout and stderr, the way
/// xinetd starts it: what it answers HAProxy.
fn one_shot_over_a_socket(dir: &TempDir, env: &[(&str, &str)]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = connect(listener.local_addr().unwrap());
    let (server, _) = listener.accept().unwrap();
    let fd: OwnedFd = server.into();
    let mut child = agent(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::from(fd.try_clone().unwrap()))
        .stdout(Stdio::from(fd.try_clone().unwrap()))
        .stderr(Stdio::from(fd))
        .spawn()
        .unwrap();
    let text = read_all(&mut client);
    drop(client.shutdown(Shutdown::Both));
    child.wait().unwrap();
    text
}

#[test]
fn one_probe_gives_the_same_line_as_the_one_shot_binary() {
    let _turn = serial();
    let held = Connections::open(5);
    let mut env = tcp_only(held.port());
    env.push(("LB_FEEDBACK_RECOVERY", "never".into()));

    // By hand.
    let dir = TempDir::new("svc-same");
    let service = Service::run(&dir).envs(&pairs(&env)).start();
    let one_shot = stdout(&agent(&dir).envs(pairs(&env)).output().unwrap());
    assert_eq!(probe(service.addr()), one_shot);
    assert_eq!(one_shot, "50%\n");
    drop(service);

    // HAProxy's first poll with the default recovery window, each with fresh state: both
    // open the window.
    env.pop();
    let (service_dir, inetd_dir) = (TempDir::new("svc-window"), TempDir::new("inetd-window"));
    let service = Service::run(&service_dir).envs(&pairs(&env)).start();
    let from_service = probe(service.addr());
    assert_eq!(
        from_service,
        one_shot_over_a_socket(&inetd_dir, &pairs(&env))
    );
    assert_eq!(from_service, "up ready 50%\n");
}

/// One poll that sends `agent-send`'s bytes first, as HAProxy does with `agent-send`.
fn probe_sending(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    read_all(&mut stream)
}

#[test]
fn agent_send_selects_a_profile_as_the_one_shot_does() {
    let _turn = serial();
    let held = Connections::open(5);
    let port = held.port();
    let mut env = tcp_only(port);
    env.push(("LB_FEEDBACK_RECOVERY", "never".into()));
    let dir = TempDir::new("svc-profiles");
    dir.file(
        "config.json",
        &format!(
            r#"{{"profiles": {{"wide": {{"tcp": [{{"port": {port}, "max_connections": 20}}]}}}}}}"#
        ),
    );
    let service = Service::run(&dir).envs(&pairs(&env)).start();
    // 5 of 20 is 25 % busy.
    assert_eq!(probe_sending(service.addr(), b"wide\n"), "75%\n");
    assert_eq!(
        probe_sending(service.addr(), b"narrow\n"),
        "error:profile\n"
    );
    service.wait_for_log("agent-send asked for unknown profile \"narrow\"");
    // No agent-send: the base config, after waiting 200 ms for it.
    assert_eq!(probe(service.addr()), "50%\n");
    drop(service);

    // Without profiles agent-send selects nothing, as in the one-shot binary.
    let plain = TempDir::new("svc-no-profiles");
    let service = Service::run(&plain).envs(&pairs(&env)).start();
    assert_eq!(probe_sending(service.addr(), b"wide\n"), "50%\n");
}

#[test]
fn two_hundred_concurrent_probes_share_one_sample() {
    let _turn = serial();
    let dir = TempDir::new("svc-200");
    let sample = Duration::from_millis(1000);
    let service = Service::run(&dir)
        .envs(&[
            ("LB_FEEDBACK_SAMPLE_MS", "1000"),
            ("LB_FEEDBACK_RECOVERY", "never"),
        ])
        // From one address here, where they would be 200 load balancers.
        .args(&[
            "--max-in-flight",
            "300",
            "--max-in-flight-per-source",
            "300",
        ])
        .start();
    let began = Instant::now();
    let mut clients: Vec<TcpStream> = (0..200).map(|_| connect(service.addr())).collect();
    let connected = began.elapsed();
    let replies: Vec<String> = clients.iter_mut().map(read_all).collect();
    let all_answered = began.elapsed();
    for reply in &replies {
        assert!(is_percent_line(reply), "{reply:?}");
    }
    assert!(
        all_answered <= sample + Duration::from_millis(200),
        "200 replies took {all_answered:?} (connecting {connected:?})"
    );
    let log = service.wait_for_log("sample 1:");
    let samples = samples(&service);
    assert_eq!(samples.len(), 1, "{log:?}");
    assert!(
        samples[0].ends_with("shared by 200 probes"),
        "{}",
        samples[0]
    );
    eprintln!("200 probes: connected in {connected:?}, all answered after {all_answered:?}");
}

#[test]
fn clients_that_send_nothing_or_never_read_do_not_delay_others() {
    let _turn = serial();
    let dir = TempDir::new("svc-stuck");
    let sample = Duration::from_millis(500);
    let service = Service::run(&dir)
        .envs(&[
            ("LB_FEEDBACK_SAMPLE_MS", "500"),
            ("LB_FEEDBACK_RECOVERY", "never"),
        ])
        .start();
    let silent_since = Instant::now();
    let mut silent = connect(service.addr());
    // Sends more than the service ever reads and never reads itself.
    let mut unread = connect(service.addr());
    let flood = vec![b'x'; 200 * 1024];
    let _ = unread.write_all(&flood);
    std::thread::sleep(Duration::from_millis(50));

    let asked = Instant::now();
    let line = probe(service.addr());
    assert!(is_percent_line(&line), "{line:?}");
    assert!(asked.elapsed() <= sample + Duration::from_millis(200));

    // The stuck clients are still connected (the service drains them): a new probe is
    // answered from the window the sampler kept going.
    let asked = Instant::now();
    let line = probe(service.addr());
    assert!(is_percent_line(&line), "{line:?}");
    assert!(asked.elapsed() <= sample + Duration::from_millis(200));
    // (The sample's line is logged just after its probes are woken.)
    service.wait_for_log("sample 2:");

    // The silent client had its reply at the first window's end, and the service let go of
    // it within the connection's deadline (sample + 2 s).
    let reply = read_all(&mut silent);
    assert!(is_percent_line(&reply), "{reply:?}");
    assert!(silent_since.elapsed() <= sample + Duration::from_millis(2500));
    drop(unread);
}

#[test]
fn an_address_outside_the_allowlist_gets_no_reply() {
    let _turn = serial();
    let dir = TempDir::new("svc-allow");
    let service = Service::run(&dir)
        .args(&["--allow", "127.0.0.2/32,::1"])
        .start();
    let asked = Instant::now();
    let mut refused = connect(service.addr());
    assert!(nothing_comes(&mut refused));
    assert!(asked.elapsed() < Duration::from_secs(1));
    service.wait_for_log("not in allow; closed without a reply");

    // The same listener answers 127.0.0.2.
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = "127.0.0.2:0".parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket
        .connect_timeout(&service.addr().into(), BOUND)
        .unwrap();
    let mut allowed: TcpStream = socket.into();
    allowed.set_read_timeout(Some(BOUND)).unwrap();
    let line = read_all(&mut allowed);
    assert!(line.ends_with("%\n"), "{line:?}");
}

#[test]
fn the_in_flight_limit_holds() {
    let _turn = serial();
    let dir = TempDir::new("svc-limit");
    let service = Service::run(&dir)
        .envs(&[
            ("LB_FEEDBACK_SAMPLE_MS", "1000"),
            ("LB_FEEDBACK_RECOVERY", "never"),
        ])
        .args(&["--max-in-flight", "2"])
        .start();
    let mut first = connect(service.addr());
    let mut second = connect(service.addr());
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let mut third = connect(service.addr());
    assert!(nothing_comes(&mut third));
    assert!(asked.elapsed() < Duration::from_millis(500));
    service.wait_for_log("2 connections already in flight (max_in_flight)");

    assert!(is_percent_line(&read_all(&mut first)));
    assert!(is_percent_line(&read_all(&mut second)));
    drop((first, second));
    // Their slots come back once the service has seen them close.
    let until = Instant::now() + BOUND;
    loop {
        let line = probe(service.addr());
        if is_percent_line(&line) {
            break;
        }
        assert!(line.is_empty() && Instant::now() < until, "{line:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_during_a_probe_still_delivers_the_reply_and_exits_zero() {
    let _turn = serial();
    let dir = TempDir::new("svc-term");
    let mut service = Service::run(&dir)
        .envs(&[
            ("LB_FEEDBACK_SAMPLE_MS", "1000"),
            ("LB_FEEDBACK_RECOVERY", "never"),
        ])
        .start();
    let mut client = connect(service.addr());
    service.wait_for_log("listening on");
    std::thread::sleep(Duration::from_millis(200));
    service.terminate();
    let line = read_all(&mut client);
    assert!(is_percent_line(&line), "{line:?}");
    let status = service.wait();
    assert!(status.success(), "{status:?}: {:?}", service.log());
    let log = service.log();
    assert!(log.iter().any(|l| l.contains("stopping")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:?}");
    assert!(TcpStream::connect(service.addr()).is_err());
}

#[test]
fn ipv4_and_ipv6_on_one_port_as_the_defaults_do() {
    let _turn = serial();
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("svc-dual");
    let (v4, v6) = (format!("0.0.0.0:{port}"), format!("[::]:{port}"));
    // Only loopback peers, should anything else find the port meanwhile.
    let service = Service::run(&dir)
        .args(&["--listen", &v4, "--listen", &v6, "--allow", "127.0.0.1,::1"])
        .start();
    assert_eq!(service.addrs.len(), 2);
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let line = probe(addr.parse().unwrap());
        assert!(line.ends_with("%\n"), "{addr}: {line:?}");
    }
}

#[test]
fn usage_and_config_errors_exit_2_and_a_busy_port_exits_1() {
    let _turn = serial();
    let dir = TempDir::new("svc-usage");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = service::command(&dir, env, args);
        let output = command.stderr(Stdio::piped()).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("a command is needed"), "{err}");
    let (code, err) = run(&["install"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("are for Windows"), "{err}");
    let (code, err) = run(
        &["run", "--listen", "127.0.0.1:0"],
        &[("LB_FEEDBACK_SAMPLE_MS", "5")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("LB_FEEDBACK_SAMPLE_MS"), "{err}");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let (code, err) = run(&["run", "--listen", &busy], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("cannot listen on {busy}")), "{err}");
    let help = Command::new(SERVICE).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(stdout(&help).contains("lb-feedback-service run"));
}

/// FIFOs planted in the state directory once wedged the service for good: a thread blocked
/// opening one held the answering lock, every slot filled, and SIGTERM did nothing. Now each
/// poll gets a clean answer, the service recovers once they are gone, and SIGTERM stops it.
#[test]
fn fifos_in_the_state_directory_neither_wedge_the_service_nor_its_stop() {
    let _turn = serial();
    let dir = TempDir::new("svc-fifo");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    for name in ["mode.json", "cpu-counters"] {
        let fifo =
            std::ffi::CString::new(state.join(name).into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    }
    let mut service = Service::run(&dir)
        .envs(&[
            ("LB_FEEDBACK_CPU_MODE", "since-last"),
            ("LB_FEEDBACK_RECOVERY", "never"),
        ])
        .start();
    for _ in 0..20 {
        assert_eq!(probe(service.addr()), "error:state\n");
    }
    std::fs::remove_file(state.join("mode.json")).unwrap();
    // The sampler meets the FIFO at cpu-counters: it samples instead of waiting on it.
    for _ in 0..3 {
        let line = probe(service.addr());
        assert!(is_percent_line(&line), "{line:?}");
    }
    service.terminate();
    let status = service.wait();
    assert!(status.success(), "{status:?}: {:?}", service.log());
}

#[test]
fn steady_polls_are_answered_at_once_and_follow_a_change_within_two_windows() {
    let _turn = serial();
    let dir = TempDir::new("svc-kept");
    let sample = Duration::from_millis(1000);
    let mut held = Connections::open(2);
    let tcp = format!("{}:10", held.port());
    let service = Service::run(&dir)
        .envs(&[
            ("LB_FEEDBACK_SAMPLE_MS", "1000"),
            ("LB_FEEDBACK_RECOVERY", "never"),
            ("LB_FEEDBACK_CPU_IMPORTANCE", "0"),
            ("LB_FEEDBACK_RAM_IMPORTANCE", "0"),
            ("LB_FEEDBACK_TCP", &tcp),
        ])
        .start();
    // The first poll starts the sampler (with no CPU monitor its window has nothing to wait
    // for), which then reads a window a second while polls come.
    assert_eq!(probe(service.addr()), "80%\n");
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        let asked = Instant::now();
        assert_eq!(probe(service.addr()), "80%\n");
        slowest = slowest.max(asked.elapsed());
    }
    assert!(slowest < sample / 2, "the slowest poll took {slowest:?}");
    // Six more connections: the replies say so within two windows, without waiting.
    held.add(6);
    let changed = Instant::now();
    loop {
        let asked = Instant::now();
        let line = probe(service.addr());
        slowest = slowest.max(asked.elapsed());
        if line == "20%\n" {
            break;
        }
        assert_eq!(line, "80%\n");
        assert!(
            changed.elapsed() < 2 * sample,
            "still {line:?} after two windows"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(slowest < sample / 2, "the slowest poll took {slowest:?}");
    eprintln!(
        "kept sample: followed in {:?}, slowest poll {slowest:?}",
        changed.elapsed()
    );
}

#[test]
fn sighup_rereads_the_config_and_a_broken_edit_changes_nothing_but_a_log_line() {
    let _turn = serial();
    let dir = TempDir::new("svc-reload");
    let quiet = r#"{"cpu": {"importance": 0}, "ram": {"importance": 0}"#;
    dir.file("config.json", &format!("{quiet}}}"));
    let service = Service::run(&dir).start();
    assert_eq!(probe(service.addr()), "up ready 100%\n");
    let hup = || service.signal("HUP");
    // A valid edit: the next polls use it.
    dir.file("config.json", &format!(r#"{quiet}, "mode": "drain"}}"#));
    hup();
    service.wait_for_log("config reloaded: the next polls use it");
    assert_eq!(probe(service.addr()), "drain #mode\n");
    // A broken edit: the file, line and column in the log, the old config answering.
    dir.file("config.json", "{\n  \"mode\": \"sleep\"\n}\n");
    hup();
    let log = service.wait_for_log("config not reloaded, the old one stays");
    let line = log
        .iter()
        .find(|l| l.contains("config not reloaded"))
        .unwrap();
    let at = format!("{}:2:", dir.path().join("config.json").display());
    assert!(line.contains(&at), "{line}");
    assert_eq!(probe(service.addr()), "drain #mode\n");
    // What a running service cannot change is said, and kept.
    dir.file(
        "config.json",
        &format!(r#"{quiet}, "mode": "normal", "max_in_flight": 3}}"#),
    );
    hup();
    service.wait_for_log("max_in_flight changed from 1024 to 3: that needs a restart");
    let line = probe(service.addr());
    assert!(line.ends_with("100%\n"), "{line:?}");
}

/// Steady steering in the service: a drain by a threshold holds across polls and windows
/// until the load is at or below release, and the state it keeps is the one the one-shot
/// probes share (one state directory).
#[test]
fn a_threshold_drain_holds_until_release_in_the_service_too() {
    let _turn = serial();
    let dir = TempDir::new("svc-steady");
    let mut held = Connections::open(10);
    let port = held.port();
    let tcp = format!("{port}:10:1:95");
    let env = [
        ("LB_FEEDBACK_RECOVERY", "never"),
        ("LB_FEEDBACK_CPU_IMPORTANCE", "0"),
        ("LB_FEEDBACK_RAM_IMPORTANCE", "0"),
        ("LB_FEEDBACK_TCP", tcp.as_str()),
    ];
    let service = Service::run(&dir).envs(&env).start();
    assert_eq!(
        probe(service.addr()),
        format!("drain #tcp:{port}:100>=95\n")
    );
    // Wait out a few windows at 9 of 10 (at least a second, longer on a loaded machine
    // until a window has seen the 9): every reply holds the drain.
    // From 10 straight to 9: closing all first passes through 0, which ends the drain.
    held.set(9);
    let held_line = format!("drain #tcp:{port}:90>85(release)\n");
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < Duration::from_secs(1)
        || (seen.last() != Some(&held_line) && start.elapsed() < Duration::from_secs(10))
    {
        seen.push(probe(service.addr()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = seen.last().unwrap().clone();
    assert_eq!(last, held_line, "{seen:?}");
    assert!(
        seen.iter().all(|line| line.starts_with("drain #tcp:")),
        "{seen:?}"
    );
    // The one-shot, in the same state directory, holds it as well.
    assert_eq!(one_shot_over_a_socket(&dir, &env), held_line);
    held.close_all();
    held.add(8);
    let line = wait_for_line(&service, "20%\n");
    assert_eq!(line, "20%\n");
}

/// Polls until the reply is `wanted`, for at most ten seconds (a loaded machine's windows
/// run late); returns the last reply.
fn wait_for_line(service: &Service, wanted: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let line = probe(service.addr());
        if line == wanted || Instant::now() > until {
            return line;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
