//! Per-target link choices. Dynamic glibc builds (a plain `cargo build`): the unwinder linked
//! statically, see `unwinder`. Windows builds: compiles the Event Log message table
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
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let crt_static = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" && !crt_static
    {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
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
