//! Windows: the `lb-feedback` service in the Service Control Manager (SCM). `install`,
//! `uninstall`, `start` and `stop` go through the windows-service crate's `ServiceManager`;
//! `scm` is the entry point `install` registers, which runs the same listener as `run` and
//! stops on SERVICE_CONTROL_STOP or at system shutdown, after the replies in flight. `install`
//! also registers the Event Log source the service reports to, `uninstall` removes it.
//!
//! The service runs as `NT AUTHORITY\LocalService`: enough to read the counters and TCP table
//! and to listen on port 3333, with none of LocalSystem's rights. Its files (the state
//! directory, by default `%ProgramData%\lb-feedback`, and `service.log` there) must be
//! writable by that account; `install` grants it Modify on them with `icacls`, because files
//! an administrator's `lb-feedback mode` wrote there are otherwise not replaceable by it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::{
    Service as ScmService, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl,
    ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::args::{self, Args, ServiceLog};
use super::log::Log;
pub use super::registration::SERVICE_NAME;
use super::registration::{ACCOUNT, DESCRIPTION, DISPLAY_NAME};
use super::{Failure, LOG_FLUSH, Service, Stop, load_config, print};
use crate::{config, eventlog};
/// LocalService's well-known SID: icacls accepts it whatever the language of the account name.
const LOCAL_SERVICE_SID: &str = "*S-1-5-19";
/// Restart 5 s, 30 s and 60 s after a failure; count failures afresh after a day without one.
const RESTART_DELAYS: [u64; 3] = [5, 30, 60];
const FAILURE_RESET: Duration = Duration::from_secs(86_400);
/// How long `start`, `stop` and `uninstall` wait for the service to get where they asked.
const STATE_WAIT: Duration = Duration::from_secs(30);
/// What ChangeServiceConfig2 answers for an information level the system does not have.
const ERROR_INVALID_LEVEL: i32 = 124;
/// How long binding may take before the SCM considers the start hung.
const START_HINT: Duration = Duration::from_secs(10);

/// `%ProgramData%\lb-feedback\service.log`: beside the default config file.
pub fn log_path() -> PathBuf {
    config::default_config_path().with_file_name("service.log")
}

/// Where the service's log is, for messages that send a person there.
fn log_place(service_log: ServiceLog) -> String {
    match service_log {
        ServiceLog::EventLog => format!("the Application event log (source {})", eventlog::SOURCE),
        ServiceLog::File => log_path().display().to_string(),
    }
}

/// An SCM call's error in words, with what to do about the usual ones.
fn scm_error(what: &str, err: windows_service::Error) -> Failure {
    let (reason, hint) = match &err {
        windows_service::Error::Winapi(io) => (
            io.to_string(),
            match io.raw_os_error() {
                Some(5) => "; run it from an elevated prompt (Run as administrator)",
                Some(1060) => "; it is not installed: lb-feedback-service install",
                Some(1072) => "; it is marked for deletion: close services.msc, or reboot",
                Some(1073) => "; it is already installed: lb-feedback-service uninstall first",
                _ => "",
            },
        ),
        other => (other.to_string(), ""),
    };
    Failure::Runtime(format!("{what}: {reason}{hint}"))
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, Failure> {
    ServiceManager::local_computer(None::<&str>, access)
        .map_err(|err| scm_error("cannot open the Service Control Manager", err))
}

fn open(access: ServiceAccess) -> Result<ScmService, Failure> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(SERVICE_NAME, access)
        .map_err(|err| scm_error(&format!("cannot open the service {SERVICE_NAME}"), err))
}

/// `install`: creates the service with the options given, then prepares its directories.
pub fn install(args: &Args) -> Result<(), Failure> {
    // The service will start with these options: check them now, at a prompt, not in a log.
    let config = load_config(args).map_err(Failure::Config)?;
    if !config.state_dir.is_absolute() {
        return Err(Failure::Usage(format!(
            "state_dir {} must be an absolute path for a service (it starts in C:\\Windows\\System32)",
            config.state_dir.display()
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|err| Failure::Runtime(format!("cannot find this program's path: {err}")))?;
    let cwd = std::env::current_dir()
        .map_err(|err| Failure::Runtime(format!("cannot read the current directory: {err}")))?;
    let mut launch_arguments = vec![OsString::from("scm")];
    launch_arguments.extend(args.options(&cwd));
    let info = ServiceInfo {
        name: OsString::from(SERVICE_NAME),
        display_name: OsString::from(DISPLAY_NAME),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.clone(),
        launch_arguments: launch_arguments.clone(),
        dependencies: Vec::new(),
        account_name: Some(OsString::from(ACCOUNT)),
        account_password: None,
    };
    let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::DELETE;
    let service = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?
        .create_service(&info, access)
        .map_err(|err| scm_error(&format!("cannot create the service {SERVICE_NAME}"), err))?;
    let mut warnings = Vec::new();
    // Also for --service-log file: a source that is there costs nothing, and a later change
    // of the flag finds it.
    if let Err(err) = eventlog::register(&exe) {
        warnings.push(format!(
            "cannot register the Event Log source {} ({err}): its events will show without \
             their text formatted",
            eventlog::SOURCE
        ));
    }
    match configure(&service) {
        Ok(warning) => warnings.extend(warning),
        Err(failure) => {
            // Not left half set up: without its recovery actions it would not come back.
            let _ = service.delete();
            let _ = eventlog::deregister();
            return Err(failure);
        }
    }
    let mut dirs = vec![config.state_dir.clone()];
    if let Some(log_dir) = log_path().parent()
        && !dirs.iter().any(|dir| dir == log_dir)
    {
        dirs.push(log_dir.to_path_buf());
    }
    for dir in &dirs {
        if let Err(warning) = grant_local_service(dir) {
            warnings.push(warning);
        }
    }
    let ports = {
        let mut ports: Vec<u16> = args.listen_addrs().iter().map(|addr| addr.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let command_line: Vec<String> = std::iter::once(exe.into_os_string())
        .chain(launch_arguments)
        .map(|arg| {
            let arg = arg.to_string_lossy().into_owned();
            match arg.contains(' ') {
                true => format!("\"{arg}\""),
                false => arg,
            }
        })
        .collect();
    let mut text = format!(
        "installed the service {SERVICE_NAME}: automatic start, runs as {ACCOUNT}, restarted after a failure\n\
         \x20 command line: {}\n\
         \x20 start it now: lb-feedback-service start\n\
         \x20 open the port: netsh advfirewall firewall add rule name=\"lb-feedback\" dir=in action=allow protocol=TCP localport={ports}\n\
         \x20 logs:         {}\n",
        command_line.join(" "),
        log_place(args.service_log.unwrap_or_default())
    );
    for warning in warnings {
        text.push_str(&format!("  warning: {warning}\n"));
    }
    print(&text)
}

/// Sets the description and the recovery actions. `Ok(Some(warning))` when this system does
/// not know recovery actions at all (Wine answers ERROR_INVALID_LEVEL); Windows always does.
fn configure(service: &ScmService) -> Result<Option<String>, Failure> {
    service
        .set_description(DESCRIPTION)
        .map_err(|err| scm_error("cannot set the description", err))?;
    let actions = RESTART_DELAYS
        .iter()
        .map(|&secs| ServiceAction {
            action_type: ServiceActionType::Restart,
            delay: Duration::from_secs(secs),
        })
        .collect();
    let recovery = service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET),
            reboot_msg: None,
            command: None,
            actions: Some(actions),
        })
        // Also restart after a start that failed with an error code (a port in use at boot).
        .and_then(|()| service.set_failure_actions_on_non_crash_failures(true));
    match recovery {
        Ok(()) => Ok(None),
        Err(windows_service::Error::Winapi(io))
            if io.raw_os_error() == Some(ERROR_INVALID_LEVEL) =>
        {
            Ok(Some(format!(
                "this system does not support recovery actions ({io}): the service will not be \
                 restarted after a failure"
            )))
        }
        Err(err) => Err(scm_error("cannot set the recovery actions", err)),
    }
}

/// Creates `dir` and gives LocalService Modify on it, inherited by what is created inside.
fn grant_local_service(dir: &Path) -> Result<(), String> {
    let grant = format!("{LOCAL_SERVICE_SID}:(OI)(CI)M");
    let by_hand = format!("run by hand: icacls \"{}\" /grant {grant}", dir.display());
    std::fs::create_dir_all(dir).map_err(|err| {
        format!(
            "cannot create {}: {}; create it and {by_hand}",
            dir.display(),
            crate::ioerr::io_reason(&err)
        )
    })?;
    match Command::new("icacls")
        .arg(dir)
        .arg("/grant")
        .arg(&grant)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "icacls failed ({status}): the service may not be able to write {}; {by_hand}",
            dir.display()
        )),
        Err(err) => Err(format!(
            "cannot run icacls ({err}): the service may not be able to write {}; {by_hand}",
            dir.display()
        )),
    }
}

/// `uninstall`: stops the service if it runs, then removes it.
pub fn uninstall() -> Result<(), Failure> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    let status = service
        .query_status()
        .map_err(|err| scm_error("cannot query the service", err))?;
    if status.current_state != ServiceState::Stopped {
        request_stop(&service)?;
    }
    service
        .delete()
        .map_err(|err| scm_error("cannot remove the service", err))?;
    let mut text = format!(
        "removed the service {SERVICE_NAME} (its files in {} stay)\n",
        log_path().parent().unwrap_or(Path::new(".")).display()
    );
    if let Err(err) = eventlog::deregister() {
        text.push_str(&format!(
            "  warning: cannot remove the Event Log source {} ({err}): delete HKLM\\{}\n",
            eventlog::SOURCE,
            eventlog::SOURCE_KEY
        ));
    }
    print(&text)
}

/// `start`: starts the service and waits until it runs (or has stopped again).
pub fn start() -> Result<(), Failure> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::START)?;
    service
        .start::<&str>(&[])
        .map_err(|err| scm_error("cannot start the service", err))?;
    match wait_for(&service, &[ServiceState::Running, ServiceState::Stopped])? {
        ServiceState::Running => print(&format!("{SERVICE_NAME} is running\n")),
        _ => Err(Failure::Runtime(format!(
            "{SERVICE_NAME} stopped right after starting; see {} or {}",
            log_place(ServiceLog::EventLog),
            log_path().display()
        ))),
    }
}

/// `stop`: asks the service to stop and waits until it has.
pub fn stop() -> Result<(), Failure> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?;
    request_stop(&service)?;
    print(&format!("{SERVICE_NAME} is stopped\n"))
}

fn request_stop(service: &ScmService) -> Result<(), Failure> {
    match service.stop() {
        Ok(_) => {}
        // ERROR_SERVICE_NOT_ACTIVE: already stopped, which is what was asked.
        Err(windows_service::Error::Winapi(io)) if io.raw_os_error() == Some(1062) => {
            return Ok(());
        }
        Err(err) => return Err(scm_error("cannot stop the service", err)),
    }
    wait_for(service, &[ServiceState::Stopped]).map(drop)
}

/// Polls the service's state until it is one of `states`, for at most [`STATE_WAIT`].
fn wait_for(service: &ScmService, states: &[ServiceState]) -> Result<ServiceState, Failure> {
    let until = Instant::now() + STATE_WAIT;
    loop {
        let state = service
            .query_status()
            .map_err(|err| scm_error("cannot query the service", err))?
            .current_state;
        if states.contains(&state) {
            return Ok(state);
        }
        if Instant::now() >= until {
            return Err(Failure::Runtime(format!(
                "{SERVICE_NAME} is still {state:?} after {} s; see {} or {}",
                STATE_WAIT.as_secs(),
                log_place(ServiceLog::EventLog),
                log_path().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

define_windows_service!(ffi_service_main, service_main);

/// `scm`: hands this thread to the SCM, which calls `service_main` on another one.
pub fn dispatch() -> Result<(), Failure> {
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|err| {
        let reason = match err {
            windows_service::Error::Winapi(io) => io.to_string(),
            other => other.to_string(),
        };
        Failure::Runtime(format!(
            "not started by the Service Control Manager ({reason}); at a prompt use \
             `lb-feedback-service run`"
        ))
    })
}

/// The service's life. Its options are the command line `install` registered (the SCM's own
/// start arguments, `_arguments`, are not used); its log is the event log or the file
/// (`--service-log`), there is no console.
fn service_main(_arguments: Vec<OsString>) {
    let args = args::parse_args();
    let verbose = args.as_ref().is_ok_and(|args| args.verbose);
    let wanted = args.as_ref().ok().and_then(|args| args.service_log);
    let log = Arc::new(open_log(wanted.unwrap_or_default(), verbose));
    if let Err(message) = run_service(args, &log) {
        log.failure(message);
    }
    // The writer thread ends with the process: give it the last lines.
    log.flush(Instant::now() + LOG_FLUSH);
}

/// The log `--service-log` asks for; the file when the event log cannot be opened, with a
/// line there saying why.
fn open_log(service_log: ServiceLog, verbose: bool) -> Log {
    match service_log {
        ServiceLog::File => Log::file(log_path(), verbose),
        ServiceLog::EventLog => Log::event_log(verbose).unwrap_or_else(|err| {
            let log = Log::file(log_path(), verbose);
            log.problem(format!(
                "cannot open the Application event log as {} ({err}): logging here instead",
                eventlog::SOURCE
            ));
            log
        }),
    }
}

/// The config reload the SCM's `paramchange` runs.
type Reload = Box<dyn Fn() + Send + Sync>;

fn run_service(args: Result<Args, lexopt::Error>, log: &Arc<Log>) -> Result<(), String> {
    let stop = Stop::new();
    // Set once the service is bound: `sc control lb-feedback paramchange` rereads the config.
    let reload: Arc<OnceLock<Reload>> = Arc::new(OnceLock::new());
    let on_control = {
        let (stop, reload) = (stop.clone(), reload.clone());
        move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                stop.trigger();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::ParamChange => {
                if let Some(reload) = reload.get() {
                    reload();
                }
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let handle = service_control_handler::register(SERVICE_NAME, on_control)
        .map_err(|err| format!("cannot register with the Service Control Manager: {err}"))?;
    let report = |state, accepted, exit_code, wait_hint| {
        let status = ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accepted,
            exit_code,
            checkpoint: 0,
            wait_hint,
            process_id: None,
        };
        if let Err(err) = handle.set_service_status(status) {
            log.problem(format!(
                "cannot report {state:?} to the Service Control Manager: {err}"
            ));
        }
    };
    let none = ServiceControlAccept::empty();
    report(
        ServiceState::StartPending,
        none,
        ServiceExitCode::NO_ERROR,
        START_HINT,
    );
    let started = args
        .map_err(|err| Failure::Usage(err.to_string()))
        .and_then(|args| {
            let config = load_config(&args).map_err(Failure::Config)?;
            let service =
                Service::bind(config, &args.listen, log.clone()).map_err(Failure::Runtime)?;
            let _ = reload.set(Box::new(super::reloader(
                args.clone(),
                service.live(),
                log.clone(),
            )));
            service.start(&stop).map_err(Failure::Runtime)
        });
    let running = match started {
        Ok(running) => running,
        Err(failure) => {
            log.failure(format!("not started: {}", failure.message()));
            log.flush(Instant::now() + LOG_FLUSH);
            // A service-specific exit code counts as a failure: the recovery actions restart it.
            report(
                ServiceState::Stopped,
                none,
                ServiceExitCode::ServiceSpecific(u32::from(failure.code())),
                Duration::ZERO,
            );
            return Ok(());
        }
    };
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP
            | ServiceControlAccept::SHUTDOWN
            | ServiceControlAccept::PARAM_CHANGE,
        ServiceExitCode::NO_ERROR,
        Duration::ZERO,
    );
    log.info(format!(
        "started: lb-feedback-service {}, {}",
        env!("CARGO_PKG_VERSION"),
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    stop.wait();
    report(
        ServiceState::StopPending,
        none,
        ServiceExitCode::NO_ERROR,
        running.stop_time() + Duration::from_secs(1),
    );
    if let Err(message) = running.finish() {
        log.problem(message);
    }
    log.info("stopped");
    log.flush(Instant::now() + LOG_FLUSH);
    // Stopped as asked: an error code here would make the recovery actions restart it.
    report(
        ServiceState::Stopped,
        none,
        ServiceExitCode::NO_ERROR,
        Duration::ZERO,
    );
    Ok(())
}
