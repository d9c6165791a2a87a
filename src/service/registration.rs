//! What the Windows service is registered as: its name, display name, description and account.
//! `lb-feedback-service install` (windows.rs) and the MSI (contrib/windows/lb-feedback.wxs)
//! both register it; the test below keeps the two the same.

pub const SERVICE_NAME: &str = "lb-feedback";
pub const DISPLAY_NAME: &str = "lb-feedback (HAProxy agent-check)";
pub const DESCRIPTION: &str = "Answers HAProxy agent-check polls (TCP port 3333 by default) \
    with this server's idle capacity from CPU, RAM and TCP connections, or with the mode set \
    by `lb-feedback mode`. Logs: the Application event log, source lb-feedback (or \
    %ProgramData%\\lb-feedback\\service.log with --service-log file).";
pub const ACCOUNT: &str = r"NT AUTHORITY\LocalService";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_msi_registers_the_service_as_install_does() {
        let wxs = include_str!("../../contrib/windows/lb-feedback.wxs");
        for (attribute, value) in [
            ("Name", SERVICE_NAME),
            ("DisplayName", DISPLAY_NAME),
            ("Description", DESCRIPTION),
            ("Account", ACCOUNT),
        ] {
            let expected = format!("{attribute}=\"{value}\"");
            assert!(wxs.contains(&expected), "the .wxs lacks {expected}");
        }
        assert!(wxs.contains(&format!("Key=\"{}\"", crate::eventlog::SOURCE_KEY)));
    }
}
