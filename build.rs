//! For Windows builds: compiles the Event Log message table (contrib/windows/messages.mc) with
//! mingw-w64's windmc and windres and links it into lb-feedback-service.exe, the file the
//! `lb-feedback` event source names (src/eventlog.rs says why there is one). Nothing for other
//! targets.

use std::path::Path;
use std::process::Command;

const MC: &str = "contrib/windows/messages.mc";

fn main() {
    println!("cargo:rerun-if-changed={MC}");
    println!("cargo:rerun-if-changed=build.rs");
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
