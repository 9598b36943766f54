//! Plugin manifests (`wow-plugin.toml`) and the WIT version check.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.interface())
    }
}

/// Contents of `wow-plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub kind: PluginKind,
    /// Version of the `wow:plugin` WIT package the component was built against.
    pub wit: String,
    #[serde(default)]
    pub description: String,
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
        manifest.check_wit_version()?;
        Ok(manifest)
    }

    /// Returns the component path of a manifest stored in `bundle_dir`.
    pub fn component_path(&self, bundle_dir: &Path) -> PathBuf {
        let file = self
            .component
            .clone()
            .unwrap_or_else(|| format!("{}.wasm", self.name.replace('-', "_")).into());
        bundle_dir.join(file)
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
    fn manifest_rejects_unknown_kind() {
        let text = "name = \"x\"\nkind = \"judge\"\nwit = \"0.1.0\"\n";
        let error = Manifest::parse(text, "x/wow-plugin.toml").unwrap_err().to_string();
        assert!(error.contains("x/wow-plugin.toml"), "{error}");
    }
}
