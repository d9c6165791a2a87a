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
        _ => Err("usage: bench_helper hold|poll|paths ...; see bench_helper.rs".into()),
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
