//! Helper for `bench/run.sh`: holds thousands of established loopback connections, fires
//! concurrent polls at lb-feedback-service, and times the two ways of counting connections.
//!
//! ```text
//! bench_helper hold WATCHED OTHER PER_PROCESS
//!     Opens WATCHED connections to one new loopback port and OTHER to another, spread over
//!     processes (open files are capped per process: a server process holds one port's
//!     accepted ends, client processes hold PER_PROCESS client ends each), prints
//!     `ready WATCHED_PORT OTHER_PORT` and holds them until its stdin closes.
//! bench_helper poll ADDR N
//!     Connects N clients to ADDR at once, reads each reply to the end and prints
//!     `answered A of N, slowest S ms, median M ms` (from each connect to its last byte).
//! bench_helper paths RUNS PORT...
//!     Linux: the median time of each way of counting (netlink with one dump, netlink with a
//!     dump per family, /proc) over RUNS calls, with the counts it gave.
//! bench_helper steady ADDR RATE SECONDS
//!     Polls ADDR RATE times a second for SECONDS from eight pollers taking turns, each poll
//!     a connection of its own at its time, after one first poll it waits for and times
//!     apart, and prints
//!     `answered A of N, p50 X ms, p99 Y ms, slowest Z ms`.
//! bench_helper lines RATE N ADDR...
//!     Polls each ADDR RATE times a second, N times, as HAProxy's agent-check does: connect,
//!     read one line, close. Eight pollers per address take turns on the schedule; the
//!     addresses are polled side by side. Prints `ADDR answered A of N` for each.
//! bench_helper pairs PROBE GAP_MS ROUNDS
//!     Linux: since-last probes in pairs GAP_MS apart, a pair a second, with one core kept
//!     busy: runs the one-shot PROBE (its environment already set up) with `--explain`, and
//!     compares the second probe's CPU figure with /proc/stat over the second before the first
//!     probe (the full window), and with what the ticks between the two would say. Prints
//!     the mean and largest error of each.
//! bench_helper hold-memory MIB
//!     Touches MIB MiB, prints `held`, and keeps them until its stdin closes.
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> Result<usize> {
        let text = args
            .get(i)
            .ok_or("missing argument; see the comment in bench_helper.rs")?;
        Ok(text.parse()?)
    };
    match args.first().map(String::as_str) {
        Some("hold") => hold(number(1)?, number(2)?, number(3)?),
        Some("serve") => serve(number(1)?),
        Some("connect") => connect(number(1)? as u16, number(2)?),
        Some("poll") => poll(args.get(1).ok_or("poll ADDR N")?, number(2)?),
        Some("paths") => paths(number(1)?, args.get(2..).unwrap_or_default()),
        Some("steady") => steady(
            args.get(1).ok_or("steady ADDR RATE SECONDS")?,
            number(2)?,
            number(3)?,
        ),
        Some("lines") => lines(number(1)?, number(2)?, args.get(3..).unwrap_or_default()),
        Some("pairs") => pairs(
            args.get(1).ok_or("pairs PROBE GAP_MS ROUNDS")?,
            number(2)?,
            number(3)?,
        ),
        Some("hold-memory") => hold_memory(number(1)?),
        _ => Err(
            "usage: bench_helper hold|poll|paths|steady|lines|pairs|hold-memory ...; see bench_helper.rs"
                .into(),
        ),
    }
}

/// Starts this program again in `mode`; its stdin is a pipe whose end tells it to exit.
fn child(mode: &[String]) -> Result<(Child, BufReader<ChildStdout>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    Ok((child, stdout))
}

fn line(from: &mut BufReader<ChildStdout>) -> Result<String> {
    let mut text = String::new();
    from.read_line(&mut text)?;
    Ok(text.trim().to_string())
}

fn hold(watched: usize, other: usize, per_process: usize) -> Result<()> {
    let mut children = Vec::new();
    let mut ports = Vec::new();
    for total in [watched, other] {
        let (server, mut out) = child(&["serve".into(), total.to_string()])?;
        let port: u16 = line(&mut out)?.parse()?;
        children.push((server, out));
        ports.push(port);
        let mut left = total;
        while left > 0 {
            let n = left.min(per_process);
            children.push(child(&["connect".into(), port.to_string(), n.to_string()])?);
            left -= n;
        }
    }
    for (_, out) in &mut children {
        let said = line(out)?;
        if said != "done" {
            return Err(format!("a helper process said {said:?}").into());
        }
    }
    println!("ready {} {}", ports[0], ports[1]);
    std::io::stdout().flush()?;
    // Hold until the caller closes stdin; the children see their stdin close as we exit.
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    for (mut process, _) in children {
        drop(process.stdin.take());
        process.wait()?;
    }
    Ok(())
}

/// Holds the accepted ends: prints the port, then `done` once `n` are accepted.
fn serve(n: usize) -> Result<()> {
    // std listens with a backlog of 128: four client processes overflow it, and each
    // dropped SYN costs its client a second. socket2 (a dependency already) takes 4096.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    socket.listen(4096)?;
    let listener = TcpListener::from(socket);
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let held: Vec<TcpStream> = (0..n)
        .map(|_| listener.accept().map(|(stream, _)| stream))
        .collect::<std::io::Result<_>>()?;
    done_then_wait(held)
}

/// Holds `n` client ends connected to `port`.
fn connect(port: u16, n: usize) -> Result<()> {
    let held: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect((Ipv4Addr::LOCALHOST, port)))
        .collect::<std::io::Result<_>>()?;
    done_then_wait(held)
}

fn done_then_wait(held: Vec<TcpStream>) -> Result<()> {
    println!("done");
    std::io::stdout().flush()?;
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    drop(held);
    Ok(())
}

fn poll(address: &str, n: usize) -> Result<()> {
    let start = std::sync::Barrier::new(n);
    let results: Vec<Option<Duration>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let began = Instant::now();
                    let mut stream = TcpStream::connect(address).ok()?;
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .ok()?;
                    let mut reply = Vec::new();
                    stream.read_to_end(&mut reply).ok()?;
                    (!reply.is_empty() && reply.ends_with(b"\n")).then(|| began.elapsed())
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().ok().flatten())
            .collect()
    });
    let mut times: Vec<Duration> = results.iter().flatten().copied().collect();
    times.sort();
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    println!(
        "answered {} of {n}, slowest {:.1} ms, median {:.1} ms",
        times.len(),
        ms(times.last()),
        ms(times.get(times.len() / 2))
    );
    Ok(())
}

#[cfg(target_os = "linux")]
fn paths(runs: usize, ports: &[String]) -> Result<()> {
    use lb_feedback::metrics::tcp::{
        Netlink, count_established_netlink_as, count_established_proc,
    };
    let ports: Vec<u16> = ports
        .iter()
        .map(|p| p.parse())
        .collect::<std::result::Result<_, _>>()?;
    type Counts = std::result::Result<Vec<u64>, lb_feedback::metrics::MetricError>;
    type Way<'a> = (&'a str, &'a dyn Fn(&[u16]) -> Counts);
    let ways: [Way; 3] = [
        ("netlink, one dump", &|p| {
            count_established_netlink_as(p, Netlink::OneDump)
        }),
        ("netlink, per family", &|p| {
            count_established_netlink_as(p, Netlink::PerFamily)
        }),
        ("/proc", &count_established_proc),
    ];
    for (name, count) in ways {
        let mut times = Vec::new();
        let mut counts = Vec::new();
        for _ in 0..runs.max(1) {
            let began = Instant::now();
            counts = count(&ports)?;
            times.push(began.elapsed());
        }
        times.sort();
        println!(
            "{name}: median {:.2} ms, counts {counts:?}",
            times[times.len() / 2].as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn paths(_runs: usize, _ports: &[String]) -> Result<()> {
    Err("paths: netlink and /proc exist on Linux only".into())
}

fn steady(address: &str, rate: usize, seconds: usize) -> Result<()> {
    let every = Duration::from_secs(1) / rate.max(1) as u32;
    let n = rate * seconds;
    // Steady polling: one poll first, not counted, which lb-feedback-service answers after
    // its first window (it was idle); the counted ones come after it.
    let first = Instant::now();
    let mut stream = TcpStream::connect(address)?;
    std::io::copy(&mut stream, &mut std::io::sink())?;
    println!(
        "first poll {:.2} ms",
        first.elapsed().as_secs_f64() * 1000.0
    );
    let began = Instant::now();
    // Eight pollers take turns on the schedule, as independent load balancers would: a slow
    // reply holds back only its own poller's next turn, eight polls later.
    const POLLERS: usize = 8;
    let mut times: Vec<Duration> = std::thread::scope(|scope| {
        let pollers: Vec<_> = (0..POLLERS)
            .map(|first| {
                scope.spawn(move || {
                    let mut times = Vec::new();
                    for i in (first..n).step_by(POLLERS) {
                        let due = began + every * i as u32;
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        let asked = Instant::now();
                        let answered = TcpStream::connect(address).and_then(|mut stream| {
                            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                            let mut reply = Vec::new();
                            stream.read_to_end(&mut reply).map(|_| reply)
                        });
                        if answered.is_ok_and(|reply| reply.ends_with(b"\n")) {
                            times.push(asked.elapsed());
                        }
                    }
                    times
                })
            })
            .collect();
        pollers
            .into_iter()
            .flat_map(|poller| poller.join().unwrap_or_default())
            .collect()
    });
    times.sort();
    let ms = |q: f64| {
        let i = ((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1));
        times.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "answered {} of {n}, p50 {:.2} ms, p99 {:.2} ms, slowest {:.2} ms",
        times.len(),
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
    Ok(())
}

fn lines(rate: usize, n: usize, addresses: &[String]) -> Result<()> {
    const POLLERS: usize = 8;
    let every = Duration::from_secs(1) / rate.max(1) as u32;
    let began = Instant::now();
    // A reply is one line: read up to its newline, then close, whatever follows.
    let poll = |address: &str| -> bool {
        let Ok(mut stream) = TcpStream::connect(address) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut reply = Vec::new();
        let mut chunk = [0u8; 256];
        while !reply.contains(&b'\n') {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(got) => reply.extend_from_slice(&chunk[..got]),
            }
        }
        true
    };
    let answered: Vec<usize> = std::thread::scope(|scope| {
        let per_address: Vec<Vec<_>> = addresses
            .iter()
            .map(|address| {
                (0..POLLERS)
                    .map(|first| {
                        scope.spawn(move || {
                            (first..n)
                                .step_by(POLLERS)
                                .filter(|i| {
                                    let due = began + every * *i as u32;
                                    std::thread::sleep(
                                        due.saturating_duration_since(Instant::now()),
                                    );
                                    poll(address)
                                })
                                .count()
                        })
                    })
                    .collect()
            })
            .collect();
        per_address
            .into_iter()
            .map(|pollers| pollers.into_iter().map(|p| p.join().unwrap_or(0)).sum())
            .collect()
    });
    for (address, answered) in addresses.iter().zip(answered) {
        println!("{address} answered {answered} of {n}");
    }
    Ok(())
}

/// The busy and total ticks of /proc/stat's aggregate line (iowait idle, as the agent counts).
fn proc_stat() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let fields: Vec<u64> = text
        .lines()
        .next()
        .ok_or("empty /proc/stat")?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let total: u64 = fields.iter().sum();
    Ok((total - fields[3] - fields[4], total))
}

fn busy_between(start: (u64, u64), end: (u64, u64)) -> f64 {
    match end.1.saturating_sub(start.1) {
        0 => f64::NAN,
        total => end.0.saturating_sub(start.0) as f64 / total as f64 * 100.0,
    }
}

/// The CPU load `--explain` printed.
fn explained_cpu(probe: &str) -> Result<f64> {
    let output = Command::new(probe).arg("--explain").output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|line| line.starts_with("cpu "))
        .ok_or_else(|| format!("no cpu line in {text:?}"))?;
    let load = line
        .split_whitespace()
        .rev()
        .nth(3)
        .ok_or("short cpu line")?;
    Ok(load.parse()?)
}

fn pairs(probe: &str, gap_ms: usize, rounds: usize) -> Result<()> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::black_box(0u64.wrapping_add(1));
            }
        });
        let outcome = (|| -> Result<(Vec<f64>, Vec<f64>)> {
            let gap = Duration::from_millis(gap_ms as u64);
            // The first probe saves the counters the pairs then compare with.
            explained_cpu(probe)?;
            let (mut now_errors, mut ticks_errors) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                let window_start = proc_stat()?;
                std::thread::sleep(Duration::from_secs(1));
                explained_cpu(probe)?;
                let first_done = proc_stat()?;
                std::thread::sleep(gap);
                let before_second = proc_stat()?;
                let second = explained_cpu(probe)?;
                let full = busy_between(window_start, first_done);
                now_errors.push((second - full).abs());
                ticks_errors.push((busy_between(first_done, before_second) - full).abs());
            }
            Ok((now_errors, ticks_errors))
        })();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (now_errors, ticks_errors) = outcome?;
        let summary = |errors: &[f64]| {
            let finite: Vec<f64> = errors.iter().copied().filter(|e| e.is_finite()).collect();
            let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
            let most = finite.iter().copied().fold(0.0, f64::max);
            format!("mean {mean:.1}, largest {most:.1} points")
        };
        println!(
            "gap {gap_ms} ms, {rounds} pairs: the reply {}; the ticks between {}",
            summary(&now_errors),
            summary(&ticks_errors)
        );
        Ok(())
    })
}

fn hold_memory(mib: usize) -> Result<()> {
    let held = vec![1u8; mib << 20];
    println!("held");
    std::io::stdout().flush()?;
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    std::hint::black_box(&held);
    Ok(())
}
