//! The short `-h` texts of both programs; `--help` keeps the full ones (`cli::HELP`,
//! `service::args::HELP`), which the key table will generate.

/// `lb-feedback -h`.
pub const LB_FEEDBACK: &str = "\
lb-feedback - tell HAProxy how much capacity this server has left

USAGE
    lb-feedback [OPTIONS]                     answer one agent-check poll (e.g. 93%)
    lb-feedback [OPTIONS] --explain [--json]  answer, and show how the answer was reached
                                              (--profile NAME: as agent-send NAME is)
    lb-feedback [OPTIONS] check-config        validate the settings, print them as JSON
    lb-feedback [OPTIONS] mode [MODE [--for DURATION] | reset]
                                              show or set the runtime mode
    lb-feedback [OPTIONS] status [--since DURATION] [--json]
                                              pollers, recovery and recent changes

MOST USED OPTIONS
    -c, --config PATH        config file (default /etc/lb-feedback/config.json)
    --tcp PORT:MAX[:IMP[:THRESHOLD]]   count established connections on PORT
    --sessions MAX[:IMP[:THRESHOLD]]   count user sessions
    --cpu-threshold N, --ram-threshold N   drain at N% load (0 = off)
    --state-dir DIR          runtime mode and poller table (default /var/lib/lb-feedback)
    -h                       this text;  --help  every option, variable and rule
    -V, --version            the version

Every option is also a config key and an LB_FEEDBACK_* variable: `lb-feedback --help`,
and the guide in /usr/share/doc/lb-feedback/ (docs/ in the source).
";

/// `lb-feedback-service -h`.
pub const SERVICE: &str = "\
lb-feedback-service - answer HAProxy's agent-check on a TCP port, without xinetd

USAGE
    lb-feedback-service run [OPTIONS]      listen in the foreground (any OS)
    lb-feedback-service install [OPTIONS]  Windows: register the service (as administrator)
    lb-feedback-service start | stop       Windows: start or stop the installed service
    lb-feedback-service uninstall          Windows: stop and remove the service

MOST USED OPTIONS
    -l, --listen ADDR:PORT   listen there instead of 0.0.0.0:3333 and [::]:3333 (repeatable)
    --allow CIDR,...         answer only these peers (default: everybody)
    --http ADDR:PORT         also serve /metrics, /load, /status, /health
    -c, --config PATH        config file, as lb-feedback's
    -v, --verbose            log listening addresses, each sample window, the stop
    -h                       this text;  --help  every option and what each connection gets
    -V, --version            the version

Settings (--tcp, --sessions, thresholds, ...) are lb-feedback's: `lb-feedback --help`.
The guide: /usr/share/doc/lb-feedback/ (docs/ in the source).
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_help_fits_a_screen() {
        for text in [LB_FEEDBACK, SERVICE] {
            assert!(text.lines().count() <= 30, "{text}");
            assert!(text.contains("--help"), "{text}");
        }
    }

    #[test]
    fn short_help_names_only_real_options() {
        for flag in [
            "--config",
            "--tcp",
            "--sessions",
            "--cpu-threshold",
            "--state-dir",
        ] {
            assert!(crate::cli::help().contains(flag), "{flag}");
        }
    }
}
