//! The JSON file: its shape (every field optional, laid over what is already there), its
//! profiles, and laying it over a config with errors at the file's line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::settings::{Settings, Slot};
use super::teach;
use super::values::*;
use super::{Config, ConfigError, Origin, Place, Problem};
use crate::cidr::Cidr;

/// Builds the file's [`Layer`] and [`Profile`] from the key table's fields
/// ([`super::keys::fields`]) and a field per monitor of the registry, and the laying of a
/// layer over a config.
macro_rules! layers {
    (
        before { $($(#[doc = $bdoc:literal])* $bf:ident: $bt:ty = $bd:expr,
            file $(#[$battr:meta])* $bl:ty;)* }
        after { $($(#[doc = $adoc:literal])* $af:ident: $at:ty = $ad:expr,
            file $(#[$aattr:meta])* $al:ty;)* }
        $($field:ident: $settings:ty => $monitor:ty),* $(,)?
    ) => {
        /// The JSON file's shape: every field optional, laid over what is already there.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Layer {
            mode: Option<Mode>,
            $($(#[$battr])* $bf: $bl,)*
            $(#[serde(default)]
            $field: Slot<$settings>,)*
            $($(#[$aattr])* $af: $al,)*
        }

        /// What an `agent-send` profile may change over the base config: the monitors and
        /// maxconn.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Profile {
            $(#[serde(default, skip_serializing_if = "Slot::is_none")]
            pub(super) $field: Slot<$settings>,)*
            #[serde(
                default,
                deserialize_with = "present",
                skip_serializing_if = "Option::is_none"
            )]
            pub(super) maxconn: Option<Option<MaxConn>>,
        }

        /// Everything the layer sets but the mode, over `config`'s.
        fn lay(config: &mut Config, layer: Layer) {
            $(if let Some(value) = layer.$bf {
                value.lay(&mut config.$bf);
            })*
            $(if let Some(set) = layer.$field.0 {
                <$settings as Settings>::apply(&mut config.$field, set);
            })*
            $(if let Some(value) = layer.$af {
                value.lay(&mut config.$af);
            })*
        }
    };
}

/// The key table's fields handed on to [`layers`] with the registry's monitors.
macro_rules! layers_with_monitors {
    ($($fields:tt)*) => {
        crate::monitors::registry!(layers, $($fields)*);
    };
}

super::keys::fields!(layers_with_monitors);

/// How a file layer's value lays over the config's: most replace it.
trait Lay<T> {
    fn lay(self, onto: &mut T);
}

impl<T> Lay<T> for T {
    fn lay(self, onto: &mut T) {
        *onto = self;
    }
}

impl Lay<BTreeMap<ProfileName, Profile>> for ProfileMap {
    fn lay(self, onto: &mut BTreeMap<ProfileName, Profile>) {
        *onto = self.0;
    }
}

/// `"scope": "cgroup"` sets both; `{"cpu": "host"}` only the one it names.
impl Lay<Scopes> for ScopeLayer {
    fn lay(self, onto: &mut Scopes) {
        match self {
            ScopeLayer::Both(scope) => {
                *onto = Scopes {
                    cpu: scope,
                    ram: scope,
                }
            }
            ScopeLayer::Each(each) => {
                onto.cpu = each.cpu.unwrap_or(onto.cpu);
                onto.ram = each.ram.unwrap_or(onto.ram);
            }
        }
    }
}

/// The most profiles one config may hold. A profile is one backend that polls this host with
/// its own `agent-send`; even a host serving many backends needs tens, and the one-shot probe
/// parses every profile on every poll (1,000 cost about a millisecond), so a bound well above
/// real use keeps a runaway generated file from costing each poll its memory and time.
pub const MAX_PROFILES: usize = 1000;

/// The file's `profiles` object: each name once (a second one is an error, as a repeated key
/// is everywhere else, instead of silently replacing the first), at most [`MAX_PROFILES`].
/// Both are checked as the names are read, so the error has the name's line and column and a
/// huge file is refused before it is held in memory.
#[derive(Debug, Default)]
struct ProfileMap(BTreeMap<ProfileName, Profile>);

impl<'de> Deserialize<'de> for ProfileMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = ProfileMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of profile names to partial configs")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ProfileMap, A::Error> {
                use serde::de::Error;
                let mut profiles = BTreeMap::new();
                while let Some(name) = map.next_key::<ProfileName>()? {
                    if profiles.contains_key(&name) {
                        let name = name.as_str().to_string();
                        return Err(A::Error::custom(Problem::DuplicateProfile { name }));
                    }
                    if profiles.len() == MAX_PROFILES {
                        return Err(A::Error::custom(Problem::TooManyProfiles {
                            max: MAX_PROFILES,
                        }));
                    }
                    let profile = map.next_value()?;
                    profiles.insert(name, profile);
                }
                Ok(ProfileMap(profiles))
            }
        }
        deserializer.deserialize_map(Names)
    }
}

/// The file's `state_dir`, checked as it is read so the error has its line and column.
fn state_dir<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    let path = Option::<PathBuf>::deserialize(deserializer)?;
    if let Some(path) = &path {
        check_state_dir(path).map_err(|cause| {
            serde::de::Error::custom(Problem::Field {
                field: "state_dir",
                cause: Box::new(cause),
            })
        })?;
    }
    Ok(path)
}

impl Config {
    fn apply_layer(&mut self, layer: Layer, origin: &Origin) {
        if let Some(mode) = layer.mode {
            self.mode = mode;
            self.mode_origin = origin.clone();
        }
        lay(self, layer);
    }

    /// Lays a JSON document over this config; errors carry the file's line and column.
    pub fn apply_json(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let at = |line, column, problem| ConfigError {
            place: Place::FileAt(path.to_path_buf(), line, column),
            problem,
        };
        // Windows Notepad starts a UTF-8 file with a byte order mark; it is no part of the
        // JSON, and positions after it count as an editor shows them.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let shape = |path: &str, err: serde_json::Error| {
            let full = err.to_string();
            let suffix = format!(" at line {} column {}", err.line(), err.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full);
            let problem = match err.classify() {
                serde_json::error::Category::Data => teach::shape_error(path, message),
                _ => Problem::Json {
                    key: None,
                    message: message.to_string(),
                },
            };
            at(err.line().max(1), err.column().max(1), problem)
        };
        let mut json = serde_json::Deserializer::from_str(text);
        let layer: Layer = serde_path_to_error::deserialize(&mut json).map_err(|err| {
            let path = err.path().to_string();
            shape(&path, err.into_inner())
        })?;
        json.end().map_err(|err| shape(".", err))?;
        self.apply_layer(layer, &Origin::File(path.to_path_buf()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Layer;
    use crate::config::reference;

    /// The keys serde's derive accepts at the top of the file, as its refusal of an unknown
    /// key lists them.
    fn accepted() -> Vec<String> {
        let err = serde_json::from_str::<Layer>("{\"not_a_key\": 1}").unwrap_err();
        let message = err.to_string();
        let (_, list) = message.split_once("expected one of ").unwrap();
        let list = list.split(" at line").next().unwrap();
        let mut keys: Vec<String> = list
            .split(", ")
            .map(|k| k.trim_matches('`').into())
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn the_reference_names_exactly_the_top_level_keys_the_file_accepts() {
        let mut documented: Vec<String> = reference::names()
            .map(|n| n.split('.').next().unwrap_or(n).to_string())
            .collect();
        documented.sort_unstable();
        documented.dedup();
        assert_eq!(documented, accepted());
    }
}
