//! The import policy: which component imports a plugin may have.
//!
//! A component's imports are checked before it is linked, so a plugin that
//! asks for more than the sandbox grants is rejected when it loads, with an
//! error naming the plugin and the import, rather than failing later.
//!
//! Allowed:
//!
//! - `wow:plugin/types` and `wow:plugin/host` at a compatible WIT version;
//!   each `host` function other than `log` only when the manifest declares
//!   its [`Capability`];
//! - `wasi:io/*` and `wasi:cli/*`, which the Rust standard library imports
//!   for panics and standard streams: stdin is empty, stdout and stderr are
//!   captured for error messages, the environment is empty and `exit` ends
//!   only the call;
//! - `wasi:random/*`, which the default `HashMap` hasher imports: every
//!   call's generator starts from the same fixed seed, so plugins stay
//!   deterministic.
//!
//! Everything else is rejected, in particular `wasi:filesystem`,
//! `wasi:sockets`, `wasi:clocks` and `wasi:http`.

use wasmtime::Engine;
use wasmtime::component::{Component, types::ComponentItem};

use super::error::PluginError;
use super::manifest::{Capability, Manifest, WIT_VERSION, wit_compatible};

/// WASI packages a plugin may import, with the interfaces allowed in each.
const WASI_ALLOWED: &[(&str, &[&str])] = &[
    ("wasi:io", &["error", "poll", "streams"]),
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:random", &["random", "insecure", "insecure-seed"]),
];

/// One parsed import name such as `wasi:io/streams@0.2.4`.
#[derive(Debug, PartialEq, Eq)]
pub struct ImportName<'a> {
    /// `wasi:io`
    pub package: &'a str,
    /// `streams`
    pub interface: &'a str,
    /// `0.2.4`, empty when unversioned.
    pub version: &'a str,
}

impl<'a> ImportName<'a> {
    /// Splits `namespace:package/interface@version`; `None` for names of
    /// another shape (a bare function or an unnamed instance).
    pub fn parse(name: &'a str) -> Option<Self> {
        let (path, version) = name.split_once('@').unwrap_or((name, ""));
        let (package, interface) = path.split_once('/')?;
        package.contains(':').then_some(Self {
            package,
            interface,
            version,
        })
    }
}

/// Checks every import of `component` against the policy and the
/// capabilities `manifest` declares. The error for rejected WASI imports
/// lists all of them.
pub fn check_imports(engine: &Engine, component: &Component, manifest: &Manifest) -> Result<(), PluginError> {
    let component_type = component.component_type();
    let mut rejected = Vec::new();
    for (name, import) in component_type.imports(engine) {
        let Some(parsed) = ImportName::parse(name) else {
            return Err(forbidden(manifest, name, "it is not a WIT interface".into()));
        };

        if parsed.package == "wow:plugin" {
            check_wow_import(engine, manifest, name, &parsed, &import.ty)?;
        } else if !wasi_allowed(&parsed) {
            rejected.push((name.to_string(), parsed.package.to_string()));
        }
    }
    if rejected.is_empty() {
        return Ok(());
    }

    let imports: Vec<&str> = rejected.iter().map(|(name, _)| name.as_str()).collect();
    let mut packages: Vec<&str> = rejected.iter().map(|(_, package)| package.as_str()).collect();
    packages.sort_unstable();
    packages.dedup();
    let hints: Vec<String> = packages.into_iter().map(wasi_hint).collect();
    Err(forbidden(
        manifest,
        &imports.join("`, `"),
        format!(
            "{} (allowed: wow:plugin, wasi:io, wasi:cli, wasi:random)",
            hints.join("; ")
        ),
    ))
}

fn check_wow_import(
    engine: &Engine,
    manifest: &Manifest,
    name: &str,
    parsed: &ImportName<'_>,
    item: &ComponentItem,
) -> Result<(), PluginError> {
    if !wit_compatible(parsed.version, WIT_VERSION) {
        return Err(forbidden(
            manifest,
            name,
            format!("this host implements wow:plugin@{WIT_VERSION}; rebuild the plugin against the matching wow-sdk"),
        ));
    }
    if parsed.interface != "host" {
        return Ok(());
    }

    let ComponentItem::ComponentInstance(instance) = item else {
        return Err(forbidden(manifest, name, "it is not an instance".into()));
    };
    for (function, _) in instance.exports(engine) {
        let Some(capability) = Capability::of_function(function) else {
            // Unknown functions fail to link with the linker's own error.
            continue;
        };
        if !manifest.grants(capability) {
            return Err(PluginError::Capability {
                plugin: manifest.name.clone(),
                function: function.to_string(),
                capability,
            });
        }
    }
    Ok(())
}

fn wasi_allowed(parsed: &ImportName<'_>) -> bool {
    WASI_ALLOWED
        .iter()
        .any(|(package, interfaces)| *package == parsed.package && interfaces.contains(&parsed.interface))
}

/// Explains what in a Rust plugin usually pulls in a rejected WASI package.
fn wasi_hint(package: &str) -> String {
    let cause = match package {
        "wasi:filesystem" => "plugins have no files, so remove the use of std::fs and read data only in `load`",
        "wasi:sockets" => "plugins have no network, so remove the use of std::net",
        "wasi:clocks" => "plugins have no clock, so remove the use of std::time::Instant and SystemTime",
        "wasi:http" => "plugins have no network",
        _ => "the sandbox does not provide it",
    };
    format!("{package}: {cause}")
}

fn forbidden(manifest: &Manifest, import: &str, reason: String) -> PluginError {
    PluginError::ForbiddenImport {
        plugin: manifest.name.clone(),
        import: import.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names_parse() {
        assert_eq!(
            ImportName::parse("wasi:io/streams@0.2.4"),
            Some(ImportName {
                package: "wasi:io",
                interface: "streams",
                version: "0.2.4"
            })
        );
        assert_eq!(ImportName::parse("wow:plugin/host").unwrap().version, "");
        assert_eq!(ImportName::parse("generate"), None);
        assert_eq!(ImportName::parse("a/b"), None);
    }

    #[test]
    fn wasi_policy_rejects_files_sockets_and_clocks() {
        let allowed = |name| wasi_allowed(&ImportName::parse(name).unwrap());
        assert!(allowed("wasi:io/streams@0.2.4"));
        assert!(allowed("wasi:cli/stderr@0.2.4"));
        assert!(allowed("wasi:random/random@0.2.4"));
        assert!(!allowed("wasi:filesystem/types@0.2.4"));
        assert!(!allowed("wasi:filesystem/preopens@0.2.4"));
        assert!(!allowed("wasi:sockets/tcp@0.2.4"));
        assert!(!allowed("wasi:clocks/monotonic-clock@0.2.4"));
        assert!(!allowed("wasi:http/outgoing-handler@0.2.4"));
    }
}
