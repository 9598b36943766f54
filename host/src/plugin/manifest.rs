//! Plugin manifests (`wow-plugin.toml`) and the WIT version check.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PluginError;

/// Version of the `wow:plugin` WIT package this host implements.
pub const WIT_VERSION: &str = "0.1.0";

/// File name of a plugin manifest inside a bundle folder.
pub const MANIFEST_FILE: &str = "wow-plugin.toml";

/// The world a plugin component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    Task,
    Elicitor,
    Scorer,
}

impl PluginKind {
    /// Returns the name of the interface the component must export.
    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Task => "task",
            PluginKind::Elicitor => "elicitor",
            PluginKind::Scorer => "scorer",
        }
    }
}

impl std::str::FromStr for PluginKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "task" => Ok(PluginKind::Task),
            "elicitor" => Ok(PluginKind::Elicitor),
            "scorer" => Ok(PluginKind::Scorer),
            _ => Err(format!(
                "unknown plugin kind {text:?}; expected task, elicitor or scorer"
            )),
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.interface())
    }
}

/// A host import a plugin must declare before it may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `generate`: sample completions from the run's model.
    Generate,
    /// `logprobs`: score a continuation under the run's model.
    Logprobs,
    /// `embed`: embed text with the run's model.
    Embed,
    /// `setting`: read a plugin setting from the run configuration.
    Setting,
    /// `log`: write to the host's log. Always granted; declaring it is allowed.
    Log,
    /// `tally`: add to the run's counters for the plugin. Always granted.
    Tally,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Generate,
        Capability::Logprobs,
        Capability::Embed,
        Capability::Setting,
        Capability::Log,
        Capability::Tally,
    ];

    /// Returns the capability that guards the host function `function`.
    pub fn of_function(function: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|capability| capability.function() == function)
    }

    /// Returns the name of the `wow:plugin/host` function it guards.
    pub fn function(self) -> &'static str {
        match self {
            Capability::Generate => "generate",
            Capability::Logprobs => "logprobs",
            Capability::Embed => "embed",
            Capability::Setting => "setting",
            Capability::Log => "log",
            Capability::Tally => "tally",
        }
    }

    /// Returns whether every plugin has it, declared or not.
    pub fn always_granted(self) -> bool {
        matches!(self, Capability::Log | Capability::Tally)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.function())
    }
}

/// Resource limits that lower the host's: a plugin's manifest and the user
/// may set them per plugin, but never above the host limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Fuel units per call.
    pub fuel: Option<u64>,
    /// Seconds of guest time per call.
    pub timeout_secs: Option<f64>,
    /// Maximum linear memory of one instance, in bytes.
    pub memory_bytes: Option<u64>,
}

/// Contents of `wow-plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    /// Version of the plugin itself.
    #[serde(default)]
    pub version: Option<String>,
    pub kind: PluginKind,
    /// Version of the `wow:plugin` WIT package the component was built against.
    pub wit: String,
    #[serde(default)]
    pub description: String,
    /// Host functions the plugin may import besides `log`.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Limits below the host's for every call of this plugin.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Component file relative to the manifest; defaults to the name with
    /// `-` replaced by `_` and a `.wasm` extension.
    #[serde(default)]
    pub component: Option<PathBuf>,
}

impl Manifest {
    /// Parses manifest text; `origin` names its source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PluginError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| PluginError::Manifest {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        manifest.check_name(origin)?;
        manifest.check_wit_version()?;
        Ok(manifest)
    }

    /// Returns the component file name relative to the manifest.
    pub fn component_file(&self) -> PathBuf {
        self.component
            .clone()
            .unwrap_or_else(|| format!("{}.wasm", self.name.replace('-', "_")).into())
    }

    /// Returns the component path of a manifest stored in `bundle_dir`.
    pub fn component_path(&self, bundle_dir: &Path) -> PathBuf {
        bundle_dir.join(self.component_file())
    }

    /// Returns whether the plugin may call the host function guarded by
    /// `capability`.
    pub fn grants(&self, capability: Capability) -> bool {
        capability.always_granted() || self.capabilities.contains(&capability)
    }

    /// Rejects names that cannot serve as a plugin name on the command line
    /// or as a file name: lower-case ASCII letters, digits and `-` only.
    fn check_name(&self, origin: &str) -> Result<(), PluginError> {
        let valid = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            return Ok(());
        }
        Err(PluginError::Manifest {
            origin: origin.to_string(),
            message: format!(
                "name {:?} is invalid; use 1 to 64 lower-case letters, digits and `-`",
                self.name
            ),
        })
    }

    /// Rejects a WIT version this host cannot link. Versions `0.x.*` are
    /// compatible only with the same `x`, following semver for `0.` releases.
    pub fn check_wit_version(&self) -> Result<(), PluginError> {
        if wit_compatible(&self.wit, WIT_VERSION) {
            return Ok(());
        }
        Err(PluginError::WitVersion {
            plugin: self.name.clone(),
            found: self.wit.clone(),
        })
    }
}

/// Returns whether components built against `found` link with a host of
/// version `host`.
pub fn wit_compatible(found: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    };
    match (parse(found), parse(host)) {
        (Some((0, found_minor)), Some((0, host_minor))) => found_minor == host_minor,
        (Some((found_major, _)), Some((host_major, _))) => found_major == host_major,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_versions_follow_semver() {
        assert!(wit_compatible("0.1.0", "0.1.0"));
        assert!(wit_compatible("0.1.3", "0.1.0"));
        assert!(!wit_compatible("0.2.0", "0.1.0"));
        assert!(!wit_compatible("1.0.0", "0.1.0"));
        assert!(!wit_compatible("banana", "0.1.0"));
    }

    #[test]
    fn manifest_rejects_future_wit() {
        let text = "name = \"x\"\nkind = \"task\"\nwit = \"0.2.0\"\n";
        let error = Manifest::parse(text, "x/wow-plugin.toml").unwrap_err().to_string();
        assert!(error.contains("0.2.0"), "{error}");
        assert!(error.contains(WIT_VERSION), "{error}");
    }

    #[test]
    fn manifest_reads_capabilities_and_limits() {
        let text = "name = \"judge\"\nversion = \"1.2.0\"\nkind = \"elicitor\"\nwit = \"0.1.0\"\n\
                    capabilities = [\"generate\", \"embed\"]\n[limits]\nfuel = 1000\n";
        let manifest = Manifest::parse(text, "judge/wow-plugin.toml").unwrap();
        assert_eq!(manifest.version.as_deref(), Some("1.2.0"));
        assert!(manifest.grants(Capability::Generate));
        assert!(manifest.grants(Capability::Embed));
        assert!(manifest.grants(Capability::Log));
        assert!(!manifest.grants(Capability::Logprobs));
        assert_eq!(manifest.limits.fuel, Some(1000));
        assert_eq!(manifest.limits.memory_bytes, None);
    }

    #[test]
    fn manifest_rejects_unknown_capability() {
        let text = "name = \"x\"\nkind = \"task\"\nwit = \"0.1.0\"\ncapabilities = [\"network\"]\n";
        let error = Manifest::parse(text, "x/wow-plugin.toml").unwrap_err().to_string();
        assert!(error.contains("network"), "{error}");
    }

    #[test]
    fn manifest_rejects_path_like_name() {
        let text = "name = \"../x\"\nkind = \"task\"\nwit = \"0.1.0\"\n";
        let error = Manifest::parse(text, "x/wow-plugin.toml").unwrap_err().to_string();
        assert!(error.contains("../x"), "{error}");
    }

    #[test]
    fn manifest_rejects_unknown_kind() {
        let text = "name = \"x\"\nkind = \"judge\"\nwit = \"0.1.0\"\n";
        let error = Manifest::parse(text, "x/wow-plugin.toml").unwrap_err().to_string();
        assert!(error.contains("x/wow-plugin.toml"), "{error}");
    }
}
