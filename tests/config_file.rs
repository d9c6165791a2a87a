//! The config file as hostile input, in the one-shot and in lb-feedback-service's reload: a
//! FIFO, a symlink to /dev/zero and a 1.5 GiB sparse file are refused at once with a reason
//! (the one-shot answers `error:config`, the service keeps its last good config and still
//! stops within 2 s), while a symlink to a good file is followed.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/service.rs"]
mod service;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TempDir, agent, stderr, stdout};
use service::Service;

/// Far longer than a refusal takes, far shorter than a blocked open or a 1.5 GiB read.
const BOUND: Duration = Duration::from_secs(5);
const QUIET: &str = r#"{"cpu": {"importance": 0}, "ram": {"importance": 0}, "recovery": "never""#;

/// Points `dir`'s config.json at `target` (a symlink, as an admin may make).
fn link_config(dir: &TempDir, target: &Path) {
    let link = dir.path().join("config.json");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn fifo(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("fifo");
    if !path.exists() {
        assert!(
            Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap()
                .success()
        );
    }
    path
}

fn sparse(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("sparse.json");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(3 << 29)
        .unwrap();
    path
}

#[test]
fn the_one_shot_refuses_a_fifo_dev_zero_and_a_huge_file_at_once() {
    let dir = TempDir::new("config-hostile");
    let fifo = fifo(&dir);
    let sparse = sparse(&dir);
    for (target, reason) in [
        (fifo.as_path(), "not a regular file (a FIFO)".to_string()),
        (
            Path::new("/dev/zero"),
            "not a regular file (a device)".into(),
        ),
        (&sparse, "1611 MB is over the 1 MiB limit".into()),
    ] {
        link_config(&dir, target);
        let started = Instant::now();
        let output = agent(&dir).output().unwrap();
        assert!(
            started.elapsed() < BOUND,
            "{target:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(stdout(&output), "error:config\n", "{target:?}");
        let config = dir.path().join("config.json");
        assert_eq!(
            stderr(&output),
            format!("lb-feedback: {}: {reason}\n", config.display()),
        );
    }
    // A symlink to a good file is followed.
    let good = dir.file("good.json", &format!(r#"{QUIET}, "mode": "drain"}}"#));
    link_config(&dir, &good);
    let output = agent(&dir).output().unwrap();
    assert_eq!(stdout(&output), "drain #mode\n", "{}", stderr(&output));
}

#[test]
fn a_reload_of_a_fifo_dev_zero_or_a_huge_file_keeps_the_old_config_and_stop_still_works() {
    let dir = TempDir::new("config-reload-hostile");
    let normal = dir.file("normal.json", &format!("{QUIET}}}"));
    let drain = dir.file("drain.json", &format!(r#"{QUIET}, "mode": "drain"}}"#));
    link_config(&dir, &normal);
    let mut service = Service::run(&dir).start();
    assert_eq!(service.poll(), "100%\n");
    let config = dir.path().join("config.json");
    let fifo = fifo(&dir);
    let sparse = sparse(&dir);
    for (target, reason) in [
        (fifo.as_path(), "not a regular file (a FIFO)"),
        (Path::new("/dev/zero"), "not a regular file (a device)"),
        (&sparse, "1611 MB is over the 1 MiB limit"),
    ] {
        link_config(&dir, target);
        service.signal("HUP");
        let line = format!(
            "config not reloaded, the old one stays: {}: {reason}",
            config.display()
        );
        service.wait_for_log(&line);
        assert_eq!(service.poll(), "100%\n", "{target:?}");
        // A good config after it is put in force.
        link_config(&dir, &drain);
        service.signal("HUP");
        let until = Instant::now() + BOUND;
        while service.poll() != "drain #mode\n" {
            assert!(Instant::now() < until, "{target:?}: {:?}", service.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        link_config(&dir, &normal);
        service.signal("HUP");
        while service.poll() != "100%\n" {
            assert!(Instant::now() < until, "{target:?}: {:?}", service.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Broken again after a good reload: logged again; the same failure once more: not.
    let count = |text: &str| service.log().iter().filter(|l| l.contains(text)).count();
    link_config(&dir, &fifo);
    service.signal("HUP");
    let until = Instant::now() + BOUND;
    while count("(a FIFO)") < 2 {
        assert!(Instant::now() < until, "{:?}", service.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    service.signal("HUP");
    // Far longer than that reload takes.
    std::thread::sleep(Duration::from_millis(300));
    link_config(&dir, &normal);
    service.signal("HUP");
    while count("config reloaded") < 7 {
        assert!(Instant::now() < until, "{:?}", service.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count("(a FIFO)"), 2, "{:?}", service.log());
    // SIGTERM right after a HUP of a hostile file: stopped within 2 s.
    link_config(&dir, &sparse);
    service.signal("HUP");
    service.terminate();
    let status = service.exits_within(Duration::from_secs(2));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
