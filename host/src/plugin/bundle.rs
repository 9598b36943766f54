//! Plugin bundles: a manifest (`wow-plugin.toml`) beside a component, as a
//! folder or as a `.tar.gz` / `.zip` archive.
//!
//! In an archive the manifest sits at the root or inside one top-level
//! folder, and the component path in the manifest is relative to it.
//! Archives are read into memory and never unpacked to disk.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component as PathPart, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::error::PluginError;
use super::manifest::{MANIFEST_FILE, Manifest};

/// Largest manifest read from a bundle, in bytes.
const MAX_MANIFEST_BYTES: u64 = 64 << 10;

/// Largest component read from a bundle, in bytes.
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// A bundle read into memory.
pub struct Bundle {
    pub manifest: Manifest,
    /// Manifest text as stored in the bundle.
    pub manifest_text: String,
    pub component: Vec<u8>,
}

/// Archive formats a bundle may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    TarGz,
    Zip,
}

impl ArchiveFormat {
    /// Returns the format of an archive path by its extension: `.tar.gz`,
    /// `.tgz` or `.zip`.
    pub fn of(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(ArchiveFormat::TarGz)
        } else if name.ends_with(".zip") {
            Some(ArchiveFormat::Zip)
        } else {
            None
        }
    }
}

/// Reads a bundle folder: its manifest and the component it names.
pub fn read_dir(dir: &Path) -> Result<Bundle, PluginError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_text = fs::read_to_string(&manifest_path).map_err(|source| io_error(&manifest_path, source))?;
    let manifest = Manifest::parse(&manifest_text, &manifest_path.display().to_string())?;
    let component_path = manifest.component_path(dir);
    if !component_path.is_file() {
        return Err(invalid(
            &manifest_path,
            format!(
                "component {} not found; build the plugin with `wow plugin build`",
                component_path.display()
            ),
        ));
    }
    let component = fs::read(&component_path).map_err(|source| io_error(&component_path, source))?;
    Ok(Bundle {
        manifest,
        manifest_text,
        component,
    })
}

/// Reads a bundle archive: the manifest and the component it names.
pub fn read_archive(path: &Path) -> Result<Bundle, PluginError> {
    let format = ArchiveFormat::of(path).ok_or_else(|| {
        invalid(
            path,
            "not a plugin archive; expected a .tar.gz, .tgz or .zip file".into(),
        )
    })?;
    let entries = match format {
        ArchiveFormat::TarGz => tar_entries(path)?,
        ArchiveFormat::Zip => zip_entries(path)?,
    };

    let (root, manifest_bytes) = entries
        .iter()
        .find_map(|(name, bytes)| manifest_root(name).map(|root| (root, bytes)))
        .ok_or_else(|| {
            invalid(
                path,
                format!("no {MANIFEST_FILE} at the root or in one top-level folder"),
            )
        })?;
    let origin = format!("{}!{}", path.display(), root.join(MANIFEST_FILE).display());
    let manifest_text = String::from_utf8(manifest_bytes.clone())
        .map_err(|_| invalid(path, format!("{MANIFEST_FILE} is not UTF-8")))?;
    let manifest = Manifest::parse(&manifest_text, &origin)?;

    let component_name = normalize(&root.join(manifest.component_file()))
        .ok_or_else(|| invalid(path, "the manifest's component path leaves the bundle".into()))?;
    let component = entries
        .into_iter()
        .find(|(name, _)| normalize(Path::new(name)).as_ref() == Some(&component_name))
        .map(|(_, bytes)| bytes)
        .ok_or_else(|| {
            invalid(
                path,
                format!("component {} not found in the archive", component_name.display()),
            )
        })?;
    Ok(Bundle {
        manifest,
        manifest_text,
        component,
    })
}

/// Writes a `.tar.gz` bundle with the manifest and the component at its
/// root.
pub fn write_tar_gz(out: &Path, manifest_text: &str, component_file: &Path, component: &[u8]) -> io::Result<()> {
    let file = File::create(out)?;
    let mut archive = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    append(&mut archive, Path::new(MANIFEST_FILE), manifest_text.as_bytes())?;
    append(&mut archive, component_file, component)?;
    archive.into_inner()?.finish()?.flush()
}

fn append<W: Write>(archive: &mut tar::Builder<W>, name: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, name, bytes)
}

/// Returns the folder of a manifest entry: the root, or one top-level folder.
fn manifest_root(name: &str) -> Option<PathBuf> {
    let path = normalize(Path::new(name))?;
    if path.file_name()? != MANIFEST_FILE {
        return None;
    }
    let parent = path.parent()?.to_path_buf();
    (parent.components().count() <= 1).then_some(parent)
}

/// Resolves `.` and rejects `..` and absolute paths, so that no entry
/// refers outside the bundle.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            PathPart::Normal(name) => normal.push(name),
            PathPart::CurDir => {}
            _ => return None,
        }
    }
    Some(normal)
}

/// Reads the regular files of a `.tar.gz` archive that are small enough to
/// be a manifest or a component.
fn tar_entries(path: &Path) -> Result<Vec<(String, Vec<u8>)>, PluginError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut entries = Vec::new();
    let corrupt = |e: io::Error| invalid(path, format!("corrupt tar.gz archive: {e}"));
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(corrupt)?.to_string_lossy().into_owned();
        let bytes = read_bounded(entry, &name, path)?;
        entries.push((name, bytes));
    }
    Ok(entries)
}

fn zip_entries(path: &Path) -> Result<Vec<(String, Vec<u8>)>, PluginError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let corrupt = |e: zip::result::ZipError| invalid(path, format!("corrupt zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(corrupt)?;
    let mut entries = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(corrupt)?;
        if !entry.is_file() {
            continue;
        }
        let name = entry.name().map_err(corrupt)?.into_owned();
        let bytes = read_bounded(entry, &name, path)?;
        entries.push((name, bytes));
    }
    Ok(entries)
}

/// Reads an archive entry, rejecting one larger than a bundle file may be.
fn read_bounded(entry: impl Read, name: &str, archive: &Path) -> Result<Vec<u8>, PluginError> {
    let max = if name.ends_with(MANIFEST_FILE) {
        MAX_MANIFEST_BYTES
    } else {
        MAX_COMPONENT_BYTES
    };
    let mut bytes = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| invalid(archive, format!("failed to read {name}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(invalid(archive, format!("{name} is larger than {max} bytes")));
    }
    Ok(bytes)
}

fn invalid(path: &Path, message: String) -> PluginError {
    PluginError::Manifest {
        origin: path.display().to_string(),
        message,
    }
}

fn io_error(path: &Path, source: io::Error) -> PluginError {
    PluginError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "name = \"demo\"\nkind = \"task\"\nwit = \"0.1.0\"\n";

    #[test]
    fn tar_gz_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.tar.gz");
        write_tar_gz(&path, MANIFEST, Path::new("demo.wasm"), b"\0asm").unwrap();

        let bundle = read_archive(&path).unwrap();

        assert_eq!(bundle.manifest.name, "demo");
        assert_eq!(bundle.component, b"\0asm");
    }

    #[test]
    fn zip_with_top_folder_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.zip");
        let mut writer = zip::ZipWriter::new(File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        writer.start_file("demo-0.1.0/wow-plugin.toml", options).unwrap();
        writer.write_all(MANIFEST.as_bytes()).unwrap();
        writer.start_file("demo-0.1.0/demo.wasm", options).unwrap();
        writer.write_all(b"\0asm").unwrap();
        writer.finish().unwrap();

        let bundle = read_archive(&path).unwrap();

        assert_eq!(bundle.component, b"\0asm");
    }

    #[test]
    fn component_outside_bundle_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("escape.tar.gz");
        let manifest = format!("{MANIFEST}component = \"../../etc/passwd\"\n");
        write_tar_gz(&path, &manifest, Path::new("demo.wasm"), b"\0asm").unwrap();

        let error = read_archive(&path).err().unwrap().to_string();

        assert!(error.contains("leaves the bundle"), "{error}");
    }

    #[test]
    fn archive_without_manifest_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.zip");
        zip::ZipWriter::new(File::create(&path).unwrap()).finish().unwrap();

        let error = read_archive(&path).err().unwrap().to_string();

        assert!(error.contains(MANIFEST_FILE), "{error}");
    }
}
