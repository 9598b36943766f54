//! Embeds the commit the host is built from as `WOW_GIT_COMMIT`.

use std::path::Path;
use std::process::Command;

/// Sets `WOW_GIT_COMMIT` to `git rev-parse HEAD` of `workspace`, or to
/// "unknown" outside a git checkout or without git, and rebuilds when HEAD
/// moves.
pub fn embed_git_commit(workspace: &Path) {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git").args(args).current_dir(workspace).output().ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        output.status.success().then(|| text.trim().to_string())
    };

    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=WOW_GIT_COMMIT={commit}");
    for tracked in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", tracked]) {
            let path = workspace.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
