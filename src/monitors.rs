//! The registry: every monitor as one line — its field (in the config, a file layer, a
//! profile, the needs and the readings of a sample), the kind of its settings, and its
//! reader. The config builds its per-monitor fields from the settings kinds and the probe its
//! per-monitor sample from the readers, each floor taking only its own column: adding a
//! monitor is one line here, its key rows, and its files.

/// Hands the list, as `field: SettingsKind => Monitor,` lines in the order their loads are
/// answered and shown, to the macro `$then`, after the tokens given after it (another
/// table's rows, for a macro that needs both).
macro_rules! registry {
    ($then:ident $(, $($pass:tt)*)?) => {
        $then! {
            $($($pass)*)?
            cpu: $crate::config::Patched => $crate::metrics::cpu::Cpu,
            ram: $crate::config::Patched => $crate::metrics::memory::Ram,
            tcp: $crate::config::Entries<$crate::config::TcpMonitor> => $crate::metrics::tcp::Tcp,
            sessions: $crate::config::Optional<$crate::config::SessionsMonitor> => $crate::metrics::sessions::Users,
            custom: $crate::config::CustomEntries => $crate::metrics::custom::Custom,
            pressure: $crate::config::Entries<$crate::config::PressureMonitor> => $crate::metrics::pressure::Pressure,
        }
    };
}
pub(crate) use registry;
