//! Plugin authoring end to end: `wow plugin new` writes a crate that builds
//! as is, `wow plugin build` turns it into a bundle, `wow plugin check`
//! passes it, and `wow run` samples the real model with it.
//!
//! Building the scaffold must stay well under a minute. The test therefore
//! builds it offline, with the workspace's Cargo.lock, in the target folder
//! where `tests/build.rs` builds the test plugins (under `target/wasm-plugins`).
//! There wow-sdk and wit-bindgen for wasm32-wasip2 are already compiled with
//! the same versions and profile, so only the new crate compiles.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use wow_tests::{model_path, test_plugin};

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wow-test-cli"));
    command.env("WOW_LOG", "warn").stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the CLI starts");
    eprintln!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Returns the target folder of the test plugins' build.
fn wasm_target_dir() -> PathBuf {
    PathBuf::from(env!("WOW_WASM_TARGET_DIR"))
}

/// Writes a bundle folder for an embedded test plugin.
fn write_bundle(parent: &Path, name: &str) -> PathBuf {
    let (manifest, component) = test_plugin(name);
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("wow-plugin.toml"), manifest).unwrap();
    std::fs::write(dir.join(format!("{}.wasm", name.replace('-', "_"))), component).unwrap();
    dir
}

#[test]
fn scaffold_builds_checks_and_runs() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sdk = workspace_root().join("sdk");

    let new = run(cli()
        .args(["plugin", "new", "task", "sums-demo", "--path"])
        .arg(work.path())
        .arg("--sdk")
        .arg(&sdk));
    assert!(new.status.success(), "plugin new failed");
    let crate_dir = work.path().join("sums-demo");
    std::fs::copy(workspace_root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    let build = run(cli()
        .args(["plugin", "build"])
        .arg(&crate_dir)
        .arg("--target-dir")
        .arg(wasm_target_dir())
        .env("CARGO_NET_OFFLINE", "true"));
    assert!(build.status.success(), "plugin build failed");
    let bundle = PathBuf::from(String::from_utf8(build.stdout).unwrap().trim());
    assert_eq!(bundle, crate_dir.join("dist/sums-demo-0.1.0.tar.gz"));
    assert!(bundle.is_file(), "{} missing", bundle.display());

    let data = crate_dir.join("example.tsv");
    let check = run(cli().args(["plugin", "check"]).arg(&bundle).arg("--data").arg(&data));
    assert!(check.status.success(), "plugin check failed");
    let report = String::from_utf8(check.stdout).unwrap();
    assert!(
        report.contains("PASS  grades are in [0, 1] and deterministic"),
        "{report}"
    );
    assert!(report.contains(", 0 failed"), "{report}");

    let out = work.path().join("run");
    let model = model_path();
    let wow_run = run(cli()
        .args([
            "run",
            "--task",
            "sums-demo",
            "--questions",
            "2",
            "--samples",
            "2",
            "--max-tokens",
            "16",
        ])
        .args(["--elicitors", "heuristic", "--plugins"])
        .arg(&bundle)
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&out));
    assert!(wow_run.status.success(), "wow run with the bundle failed");
    let responses = std::fs::read_to_string(out.join("responses.jsonl")).unwrap();
    let lines: Vec<Value> = responses.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{responses}");
    assert!(lines.iter().all(|r| r["error"].is_null()), "{responses}");
    assert_eq!(lines[0]["question_id"], "q1");
}

#[test]
fn check_fails_on_forbidden_import() {
    let work = tempfile::tempdir().unwrap();
    let bundle = write_bundle(work.path(), "hostile-fs");

    let check = run(cli().args(["plugin", "check"]).arg(&bundle));

    assert!(!check.status.success(), "a plugin importing wasi:filesystem must fail");
    let report = String::from_utf8(check.stdout).unwrap();
    assert!(report.contains("FAIL  imports, capabilities and exports"), "{report}");
    assert!(report.contains("wasi:filesystem"), "{report}");
}

#[test]
fn check_fails_on_invalid_prompt() {
    let work = tempfile::tempdir().unwrap();
    let bundle = write_bundle(work.path(), "hostile-task");
    let data = work.path().join("questions.txt");
    std::fs::write(&data, "fine-1\nno-prompt-2\n").unwrap();

    let check = run(cli().args(["plugin", "check"]).arg(&bundle).arg("--data").arg(&data));

    assert!(!check.status.success(), "an empty prompt must fail the check");
    let report = String::from_utf8(check.stdout).unwrap();
    assert!(
        report.contains("FAIL  prompt is valid and deterministic: question no-prompt-2"),
        "{report}"
    );
    assert!(report.contains("PASS  load survives malformed datasets"), "{report}");
    let stderr = String::from_utf8(check.stderr).unwrap();
    assert!(stderr.contains("checks failed"), "{stderr}");
}

#[test]
fn archive_bundle_is_listed() {
    let work = tempfile::tempdir().unwrap();
    let dir = write_bundle(work.path(), "hostile");
    let zip_path = work.path().join("hostile.zip");
    zip_dir(&dir, &zip_path);
    std::fs::remove_dir_all(&dir).unwrap();

    let list = run(cli().args(["plugins", "list", "--plugins"]).arg(&zip_path));

    assert!(list.status.success());
    let listing = String::from_utf8(list.stdout).unwrap();
    let line = listing
        .lines()
        .find(|l| l.starts_with("hostile "))
        .expect("hostile listed");
    assert!(line.contains("hostile.zip"), "{line}");
}

/// Writes the files of `dir` into a zip archive, under one top-level folder.
fn zip_dir(dir: &Path, zip_path: &Path) {
    let mut writer = zip::ZipWriter::new(std::fs::File::create(zip_path).unwrap());
    let folder = dir.file_name().unwrap().to_str().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{folder}/{}", path.file_name().unwrap().to_str().unwrap());
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(&std::fs::read(&path).unwrap()).unwrap();
    }
    writer.finish().unwrap();
}
