//! Finding plugins: the built-ins embedded at build time, bundle folders
//! and bundle archives.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bundle::{self, ArchiveFormat, Bundle};
use super::error::PluginError;
use super::manifest::{MANIFEST_FILE, Manifest, PluginKind};
use super::sandbox::Sandbox;
use super::wrappers::{ElicitorPlugin, ScorerPlugin, TaskPlugin};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// Origin of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Compiled into the `wow` binary.
    Builtin,
    /// A bundle folder (`wow-plugin.toml` beside the component) or archive.
    Bundle(PathBuf),
}

struct Entry {
    manifest: Arc<Manifest>,
    source: PluginSource,
    component: Component,
}

enum Component {
    Embedded(&'static [u8]),
    Loaded(Arc<[u8]>),
}

/// The plugins a run can use, by name. Bundles added later replace
/// built-ins of the same name.
pub struct PluginRegistry {
    sandbox: Arc<Sandbox>,
    entries: BTreeMap<String, Entry>,
}

impl PluginRegistry {
    /// Creates a registry holding the built-in plugins.
    pub fn new(sandbox: Sandbox) -> Result<Self, PluginError> {
        let mut registry = Self {
            sandbox: Arc::new(sandbox),
            entries: BTreeMap::new(),
        };
        for (text, bytes) in builtin::BUNDLED {
            registry.add_embedded(text, bytes)?;
        }
        Ok(registry)
    }

    /// Adds a bundle from its manifest text and component bytes, as the
    /// built-ins and the test plugins are embedded.
    pub fn add_embedded(&mut self, manifest: &str, component: &'static [u8]) -> Result<(), PluginError> {
        let manifest = Manifest::parse(manifest, "embedded plugin")?;
        self.insert(Entry {
            manifest: Arc::new(manifest),
            source: PluginSource::Builtin,
            component: Component::Embedded(component),
        });
        Ok(())
    }

    /// Adds the bundles at `path`: a bundle archive, a bundle folder, or a
    /// folder whose sub-folders and archives are bundles. Returns how many
    /// were added.
    pub fn add_path(&mut self, path: &Path) -> Result<usize, PluginError> {
        if path.is_file() {
            self.add_archive(path)?;
            return Ok(1);
        }
        self.add_dir(path)
    }

    /// Adds every bundle in `dir`: the folder itself when it contains a
    /// manifest, else each sub-folder that does and each bundle archive.
    pub fn add_dir(&mut self, dir: &Path) -> Result<usize, PluginError> {
        if dir.join(MANIFEST_FILE).is_file() {
            self.add_bundle_dir(dir)?;
            return Ok(1);
        }

        let entries = fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
        let mut paths = entries
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| io_error(dir, source))?;
        paths.sort();

        let mut added = 0;
        for path in paths {
            if path.join(MANIFEST_FILE).is_file() {
                self.add_bundle_dir(&path)?;
                added += 1;
            } else if path.is_file() && ArchiveFormat::of(&path).is_some() {
                self.add_archive(&path)?;
                added += 1;
            }
        }
        Ok(added)
    }

    /// Adds a bundle archive (`.tar.gz`, `.tgz` or `.zip`).
    pub fn add_archive(&mut self, path: &Path) -> Result<(), PluginError> {
        let Bundle {
            manifest, component, ..
        } = bundle::read_archive(path)?;
        self.insert(Entry {
            manifest: Arc::new(manifest),
            source: PluginSource::Bundle(path.to_path_buf()),
            component: Component::Loaded(component.into()),
        });
        Ok(())
    }

    fn add_bundle_dir(&mut self, dir: &Path) -> Result<(), PluginError> {
        let Bundle {
            manifest, component, ..
        } = bundle::read_dir(dir)?;
        self.insert(Entry {
            manifest: Arc::new(manifest),
            source: PluginSource::Bundle(dir.to_path_buf()),
            component: Component::Loaded(component.into()),
        });
        Ok(())
    }

    fn insert(&mut self, entry: Entry) {
        if let Some(previous) = self.entries.get(&entry.manifest.name) {
            tracing::debug!(
                plugin = %entry.manifest.name,
                "{:?} replaces the plugin of the same name from {:?}",
                entry.source,
                previous.source
            );
        }
        self.entries.insert(entry.manifest.name.clone(), entry);
    }

    /// Lists the known plugins in name order.
    pub fn list(&self) -> impl Iterator<Item = (&Manifest, &PluginSource)> {
        self.entries
            .values()
            .map(|entry| (entry.manifest.as_ref(), &entry.source))
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Returns the manifest of the plugin `name`.
    pub fn manifest(&self, name: &str) -> Option<&Manifest> {
        self.entries.get(name).map(|entry| entry.manifest.as_ref())
    }

    pub fn task(&self, name: &str) -> Result<TaskPlugin, PluginError> {
        let (manifest, bytes) = self.component(name, PluginKind::Task)?;
        TaskPlugin::new(manifest, self.sandbox.clone(), &bytes)
    }

    pub fn elicitor(&self, name: &str) -> Result<ElicitorPlugin, PluginError> {
        let (manifest, bytes) = self.component(name, PluginKind::Elicitor)?;
        ElicitorPlugin::new(manifest, self.sandbox.clone(), &bytes)
    }

    pub fn scorer(&self, name: &str) -> Result<ScorerPlugin, PluginError> {
        let (manifest, bytes) = self.component(name, PluginKind::Scorer)?;
        ScorerPlugin::new(manifest, self.sandbox.clone(), &bytes)
    }

    /// Returns the manifest and component bytes of plugin `name`, of any kind.
    pub fn component_bytes(&self, name: &str) -> Result<(Arc<Manifest>, Vec<u8>), PluginError> {
        let entry = self.entry(name)?;
        self.component(name, entry.manifest.kind)
    }

    fn entry(&self, name: &str) -> Result<&Entry, PluginError> {
        self.entries.get(name).ok_or_else(|| PluginError::NotFound {
            name: name.to_string(),
            available: self.entries.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    fn component(&self, name: &str, expected: PluginKind) -> Result<(Arc<Manifest>, Vec<u8>), PluginError> {
        let entry = self.entry(name)?;
        if entry.manifest.kind != expected {
            return Err(PluginError::WrongKind {
                plugin: name.to_string(),
                expected,
                found: entry.manifest.kind,
            });
        }

        let bytes = match &entry.component {
            Component::Embedded(bytes) => bytes.to_vec(),
            Component::Loaded(bytes) => bytes.to_vec(),
        };
        Ok((entry.manifest.clone(), bytes))
    }
}

fn io_error(path: &Path, source: std::io::Error) -> PluginError {
    PluginError::Io {
        path: path.display().to_string(),
        source,
    }
}
