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
            let _ = writeln!(
                std::io::stderr().lock(),
                "lb-feedback-service: {}",
                failure.message()
            );
            ExitCode::from(failure.code())
        }
    }
}
