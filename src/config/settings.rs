//! The kinds of monitor settings the registry (`crate::monitors`) names, and how each is
//! kept in the config, written in a file layer or profile, laid over, and seen by one
//! profile without a copy: `Patched` (cpu, ram: a profile changes single fields), `Entries`
//! (tcp, pressure: a list a profile replaces), `CustomEntries` (the same, each name once) and
//! `Optional` (sessions: a profile may turn it off with `null`).

use std::fmt::Debug;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::custom::{CustomList, CustomMonitor};
use super::error::Problem;
use super::monitors::{Monitor, MonitorLayer, SessionsMonitor, TcpMonitor};
use super::values::{Importance, Real, Threshold, check_release};

/// One kind of monitor settings.
pub trait Settings {
    /// In the effective config.
    type Value: Clone + Debug + PartialEq + Serialize;
    /// In a file layer or a profile, when the key is there.
    type Layer: Clone + Debug + PartialEq + Serialize;
    /// As the base or one profile answers with it, borrowed from the config.
    type View<'a>: Copy + Debug + PartialEq
    where
        Self: 'a;

    fn default() -> Self::Value;
    /// A layer as the file writes it; `None` leaves the value as it is.
    fn layer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Self::Layer>, D::Error>;
    fn apply(value: &mut Self::Value, layer: Self::Layer);
    fn view<'a>(value: &'a Self::Value, layer: Option<&'a Self::Layer>) -> Self::View<'a>;
    fn owned(view: Self::View<'_>) -> Self::Value;
    /// Every release below its threshold; `field` names the monitor, `what` adds the profile.
    fn check(
        view: Self::View<'_>,
        field: &str,
        what: &dyn Fn(String) -> String,
    ) -> Result<(), Problem>;
}

/// Builds [`Monitors`] with a field per monitor of the registry.
macro_rules! views {
    ($($field:ident: $settings:ty => $monitor:ty),* $(,)?) => {
        /// The monitors one config or profile answers with (see `Config::monitors`).
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct Monitors<'a> {
            $(pub $field: <$settings as Settings>::View<'a>,)*
        }
    };
}

crate::monitors::registry!(views);

/// A monitor's settings slot in a file layer or profile: absent, or what the file says.
pub struct Slot<K: Settings>(pub Option<K::Layer>);

impl<K: Settings> Slot<K> {
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl<K: Settings> Default for Slot<K> {
    fn default() -> Self {
        Slot(None)
    }
}

impl<K: Settings> Clone for Slot<K> {
    fn clone(&self) -> Self {
        Slot(self.0.clone())
    }
}

impl<K: Settings> PartialEq for Slot<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Settings> Debug for Slot<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, K: Settings> Deserialize<'de> for Slot<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::layer(deserializer).map(Slot)
    }
}

impl<K: Settings> Serialize for Slot<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// CPU or RAM: one monitor whose fields a layer changes one by one.
pub struct Patched;

impl Settings for Patched {
    type Value = Monitor;
    type Layer = MonitorLayer;
    type View<'a> = Monitor;

    fn default() -> Monitor {
        Monitor {
            importance: Importance::ONE,
            threshold: Threshold::ZERO,
            release: None,
        }
    }

    fn layer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<MonitorLayer>, D::Error> {
        Option::deserialize(deserializer)
    }

    fn apply(value: &mut Monitor, layer: MonitorLayer) {
        layer.apply(value);
    }

    fn view(value: &Monitor, layer: Option<&MonitorLayer>) -> Monitor {
        let mut monitor = *value;
        if let Some(layer) = layer {
            layer.apply(&mut monitor);
        }
        monitor
    }

    fn owned(view: Monitor) -> Monitor {
        view
    }

    fn check(m: Monitor, field: &str, what: &dyn Fn(String) -> String) -> Result<(), Problem> {
        check_release(
            || what(field.into()),
            m.threshold.get(),
            m.release.map(Real::get),
        )
    }
}

/// An entry of a list monitor: its name in messages, and its threshold and release.
pub trait Entry: Clone + Debug + PartialEq + Serialize + for<'de> Deserialize<'de> {
    fn what(&self) -> String;
    fn limits(&self) -> (f64, Option<f64>);
}

impl Entry for TcpMonitor {
    fn what(&self) -> String {
        format!("tcp:{}", self.port.get())
    }

    fn limits(&self) -> (f64, Option<f64>) {
        (self.threshold.get(), self.release.map(Real::get))
    }
}

impl Entry for SessionsMonitor {
    fn what(&self) -> String {
        crate::words::SESSIONS.to_string()
    }

    fn limits(&self) -> (f64, Option<f64>) {
        (self.threshold.get(), self.release.map(Real::get))
    }
}

/// A list of monitors (tcp, pressure) that a layer replaces whole.
pub struct Entries<T>(PhantomData<T>);

impl<T: Entry> Settings for Entries<T> {
    type Value = Vec<T>;
    type Layer = Vec<T>;
    type View<'a>
        = &'a [T]
    where
        T: 'a;

    fn default() -> Vec<T> {
        Vec::new()
    }

    fn layer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<T>>, D::Error> {
        Option::deserialize(deserializer)
    }

    fn apply(value: &mut Vec<T>, layer: Vec<T>) {
        *value = layer;
    }

    fn view<'a>(value: &'a Vec<T>, layer: Option<&'a Vec<T>>) -> &'a [T] {
        layer.unwrap_or(value)
    }

    fn owned(view: &[T]) -> Vec<T> {
        view.to_vec()
    }

    fn check(view: &[T], _: &str, what: &dyn Fn(String) -> String) -> Result<(), Problem> {
        view.iter().try_for_each(|entry| {
            let (threshold, release) = entry.limits();
            check_release(|| what(entry.what()), threshold, release)
        })
    }
}

/// The custom monitors: a list a layer replaces, each name at most once.
pub struct CustomEntries;

impl Settings for CustomEntries {
    type Value = Vec<CustomMonitor>;
    type Layer = CustomList;
    type View<'a> = &'a [CustomMonitor];

    fn default() -> Vec<CustomMonitor> {
        Vec::new()
    }

    fn layer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<CustomList>, D::Error> {
        Option::deserialize(deserializer)
    }

    fn apply(value: &mut Vec<CustomMonitor>, layer: CustomList) {
        *value = layer.0;
    }

    fn view<'a>(
        value: &'a Vec<CustomMonitor>,
        layer: Option<&'a CustomList>,
    ) -> &'a [CustomMonitor] {
        layer.map_or(value, |list| &list.0)
    }

    fn owned(view: &[CustomMonitor]) -> Vec<CustomMonitor> {
        view.to_vec()
    }

    fn check(
        view: &[CustomMonitor],
        _: &str,
        what: &dyn Fn(String) -> String,
    ) -> Result<(), Problem> {
        view.iter().try_for_each(|c| {
            let monitor = || what(format!("custom {:?}", c.name));
            check_release(monitor, c.threshold.get(), c.release.map(Real::get))
        })
    }
}

/// One monitor that is off unless configured (sessions); `null` in a layer turns it off.
pub struct Optional<T>(PhantomData<T>);

impl<T: Entry + Copy> Settings for Optional<T> {
    type Value = Option<T>;
    type Layer = Option<T>;
    type View<'a>
        = Option<T>
    where
        T: 'a;

    fn default() -> Option<T> {
        None
    }

    /// `null` is a layer (off), unlike an absent key.
    fn layer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }

    fn apply(value: &mut Option<T>, layer: Option<T>) {
        *value = layer;
    }

    fn view(value: &Option<T>, layer: Option<&Option<T>>) -> Option<T> {
        *layer.unwrap_or(value)
    }

    fn owned(view: Option<T>) -> Option<T> {
        view
    }

    fn check(view: Option<T>, field: &str, what: &dyn Fn(String) -> String) -> Result<(), Problem> {
        view.map_or(Ok(()), |entry| {
            let (threshold, release) = entry.limits();
            check_release(|| what(field.into()), threshold, release)
        })
    }
}
