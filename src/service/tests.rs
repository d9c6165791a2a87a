//! Unit tests of `service`: the listener, its slots and its stop.

use super::*;
use limits::{Limits, Refusal};
use std::io::Read;
use std::net::TcpStream;

fn quiet() -> Arc<Log> {
    Arc::new(Log::stderr(false))
}

fn config(json: &str) -> Config {
    let mut config = Config::default();
    config
        .apply_json(json, std::path::Path::new("t.json"))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("lbf-service-{}", std::process::id()));
    config.state_dir = dir;
    config
}

#[test]
fn slots_are_limited_and_freed() {
    let slots = Arc::new(Slots::new(Limits::new(2, 16)));
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let a = Slots::take(&slots, peer).unwrap();
    let _b = Slots::take(&slots, peer).unwrap();
    assert_eq!(Slots::take(&slots, peer).err(), Some(Refusal::Full));
    drop(a);
    assert!(Slots::take(&slots, peer).is_ok());
    let soon = Instant::now() + Duration::from_millis(20);
    assert_eq!(slots.wait_idle(soon), 1);
}

#[test]
fn stop_wakes_waiters() {
    let stop = Stop::new();
    let waiter = {
        let stop = stop.clone();
        thread::spawn(move || stop.wait())
    };
    assert!(!stop.is_set());
    stop.trigger();
    waiter.join().unwrap();
    assert!(stop.is_set());
}

#[test]
fn a_given_address_that_cannot_be_bound_is_an_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Service::bind(Config::default(), &[addr], quiet())
        .err()
        .unwrap();
    assert!(
        err.starts_with(&format!("cannot listen on {addr}")),
        "{err}"
    );
}

#[test]
fn serves_in_process_and_stops_cleanly() {
    let config = config(r#"{"cpu": {"importance": 0}, "ram": {"importance": 0}, "mode": "drain"}"#);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let state_dir = config.state_dir.clone();
    let service = Service::bind(config, &[any], quiet()).unwrap();
    let addr = service.local_addrs()[0];
    let stop = Stop::new();
    let server = {
        let stop = stop.clone();
        thread::spawn(move || service.serve(&stop))
    };
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("drain"), "{reply:?}");
    stop.trigger();
    server.join().unwrap().unwrap();
    // The listener is gone with its thread.
    assert!(TcpStream::connect(addr).is_err());
    let _ = std::fs::remove_dir_all(state_dir);
}
