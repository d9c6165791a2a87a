//! Per-target link choices. Dynamic glibc builds (a plain `cargo build`): the unwinder linked
//! statically, see `unwinder`. Static x86_64 glibc builds (the packages'): the probe's hot code
//! laid out side by side, see `hot_order`. Windows builds: compiles the Event Log message table
//! (contrib/windows/messages.mc) with mingw-w64's windmc and windres and links it into
//! lb-feedback-service.exe, the file the `lb-feedback` event source names (src/eventlog.rs
//! says why there is one). Nothing for other targets.

use std::path::Path;
use std::process::Command;

const MC: &str = "contrib/windows/messages.mc";

fn main() {
    println!("cargo:rerun-if-changed={MC}");
    println!("cargo:rerun-if-changed=build.rs");
    unwinder();
    hot_order();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    // The same prefix as the linker build.sh names; WINDMC/WINDRES override it.
    let tool = |name: &str, default: &str| {
        std::env::var(name).unwrap_or_else(|_| format!("x86_64-w64-mingw32-{default}"))
    };
    let mc = Path::new(env!("CARGO_MANIFEST_DIR")).join(MC);
    run(Command::new(tool("WINDMC", "windmc"))
        .current_dir(out)
        .args(["-r", ".", "-h", "."])
        .arg(&mc));
    let object = out.join("messages.o");
    run(Command::new(tool("WINDRES", "windres"))
        .current_dir(out)
        .args(["messages.rc", "-O", "coff", "-o"])
        .arg(&object));
    println!(
        "cargo:rustc-link-arg-bin=lb-feedback-service={}",
        object.display()
    );
}

/// A dynamic glibc build links GCC's unwinder from libgcc_eh.a instead of libgcc_s.so.1, the
/// same unwinder the static build (crt-static) links: one shared library fewer for the dynamic
/// loader to map, version-check and search on every symbol lookup, 28 k of the plain probe's
/// 345 k instructions (docs/BENCHMARKS.md, "The plain build's loader"). Panics still unwind
/// (lb-feedback-service's threads rely on it). A link-lib, not a link-arg: rustc names
/// `-lgcc_s` itself (std's unwind crate; `-static-libgcc` has no effect, rustc links with
/// `-nodefaultlibs`), link-args come after it and the first definition wins, while this
/// package's libraries come before std's. A build script's flag reaches only this package's
/// crates, not proc macros or build scripts, which RUSTFLAGS would.
fn unwinder() {
    if var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && !crt_static()
    {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}

/// The static x86_64 glibc build (contrib/static-bins.sh, which the packages ship) asks the
/// linker to place the functions a probe runs (contrib/hot-functions.txt, written by
/// bench/hot-order.sh) first and side by side. The kernel maps a program's code 64 KiB at a
/// time, each a page fault of about 10 us when the machine idled between polls
/// (bench/cold-calls.sh); in the compiler's order a probe touches almost every 64 KiB of
/// lb-feedback's 1.7 MiB of code, in this order a few (docs/BENCHMARKS.md, "The probe's code,
/// side by side"). Only lld takes the list (rustc's own linker on x86_64 Linux since Rust
/// 1.90): an empty program linked with the same flags first tells, and with another linker
/// the code stays in the compiler's order. Names the build lacks are skipped.
fn hot_order() {
    if var("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || !crt_static()
    {
        return;
    }
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/hot-functions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let args = [
        format!("-Wl,--symbol-ordering-file={}", list.display()),
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if links_with(&args) {
        for arg in args {
            println!("cargo:rustc-link-arg-bin=lb-feedback={arg}");
        }
    } else {
        println!(
            "cargo:warning=the linker takes no --symbol-ordering-file (not lld): lb-feedback's code stays in the compiler's order"
        );
    }
}

/// Whether an empty program links for the target with this build's flags, its linker and
/// the link arguments `args`.
fn links_with(args: &[String]) -> bool {
    use std::io::Write;
    let out = Path::new(&var("OUT_DIR")).join("links-with");
    let mut rustc = Command::new(var("RUSTC"));
    rustc.args([
        "--target",
        &var("TARGET"),
        "--crate-name",
        "links_with",
        "-o",
    ]);
    rustc.arg(&out);
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    rustc.args(flags.split('\x1f').filter(|flag| !flag.is_empty()));
    let linker = var("RUSTC_LINKER");
    if !linker.is_empty() {
        rustc.arg(format!("-Clinker={linker}"));
    }
    for arg in args {
        rustc.arg(format!("-Clink-arg={arg}"));
    }
    rustc.arg("-");
    rustc.stdin(std::process::Stdio::piped());
    rustc.stdout(std::process::Stdio::null());
    rustc.stderr(std::process::Stdio::null());
    let Ok(mut child) = rustc.spawn() else {
        return false;
    };
    let fed = child
        .stdin
        .take()
        .is_some_and(|mut stdin| stdin.write_all(b"fn main() {}\n").is_ok());
    child.wait().is_ok_and(|status| status.success()) && fed
}

/// A variable cargo sets for build scripts; empty when it is not set.
fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Whether the target links glibc statically (`-C target-feature=+crt-static`).
fn crt_static() -> bool {
    var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static")
}

/// A build script reports failure by panicking: cargo shows the message.
fn run(command: &mut Command) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{command:?} failed ({status})"),
        Err(err) => panic!(
            "cannot run {command:?}: {err} (mingw-w64's binutils, see contrib/windows/build.sh)"
        ),
    }
}
