//! `lb-feedback-service`: the agent-check listener (`run`, any OS) and, on Windows, the
//! Service Control Manager commands. Everything lives in the library's `service` module; this
//! only renders a failure once on stderr with its exit code (0 ok, 1 runtime, 2 usage/config).

use std::io::Write;
use std::process::ExitCode;

use lb_feedback::service::{self, Failure, args};

fn main() -> ExitCode {
    let result = args::parse_args()
        .map_err(|err| Failure::Usage(err.to_string()))
        .and_then(service::execute);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let message = failure.message();
            if !message.is_empty() {
                say(format!("lb-feedback-service: {message}\n"));
            }
            ExitCode::from(failure.code())
        }
    }
}

/// Writes the failure, waiting for it at most `service::LOG_FLUSH`: a stderr that nobody
/// reads (a full pipe) must not keep the process from exiting.
fn say(line: String) {
    let (done, written) = std::sync::mpsc::channel();
    let writer = std::thread::Builder::new().spawn(move || {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        let _ = done.send(());
    });
    if writer.is_ok() {
        let _ = written.recv_timeout(service::LOG_FLUSH);
    }
}
