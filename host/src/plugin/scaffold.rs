//! `wow plugin new`: a plugin crate that builds as is, with a manifest and
//! a working example of its kind.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::manifest::{MANIFEST_FILE, PluginKind, WIT_VERSION};

/// Example dataset written beside a new task plugin.
pub const EXAMPLE_DATA_FILE: &str = "example.tsv";

/// Where a new plugin crate gets `wow-sdk` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A local checkout's `sdk/` folder, written relative to the crate when
    /// possible.
    Path(PathBuf),
    /// The wow repository, by git URL.
    Git(String),
}

impl SdkSource {
    /// Returns the `sdk/` folder of the wow repository that contains `dir`,
    /// else the git repository this host was built from.
    pub fn detect(dir: &Path) -> Self {
        let absolute = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        absolute
            .ancestors()
            .map(|ancestor| ancestor.join("sdk"))
            .find(|sdk| is_wow_sdk(sdk))
            .map(SdkSource::Path)
            .unwrap_or_else(|| SdkSource::Git(env!("CARGO_PKG_REPOSITORY").to_string()))
    }

    /// Returns the `wow-sdk = ...` dependency line for a crate in `crate_dir`.
    fn dependency(&self, crate_dir: &Path) -> String {
        match self {
            SdkSource::Path(sdk) => {
                let path = relative_path(crate_dir, sdk).unwrap_or_else(|| sdk.clone());
                format!("wow-sdk = {{ path = {:?} }}", path.display().to_string())
            }
            SdkSource::Git(url) => format!(
                "# wow-sdk from the wow repository; use `path = \"...\"` for a local checkout instead.\n\
                 wow-sdk = {{ git = {url:?} }}"
            ),
        }
    }
}

fn is_wow_sdk(dir: &Path) -> bool {
    fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.contains("name = \"wow-sdk\""))
}

/// Returns `target` relative to `base`, both absolute.
fn relative_path(base: &Path, target: &Path) -> Option<PathBuf> {
    let base = base.canonicalize().ok()?;
    let target = target.canonicalize().ok()?;
    let common = base
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut path = PathBuf::new();
    for _ in base.components().skip(common) {
        path.push("..");
    }
    for part in target.components().skip(common) {
        path.push(part);
    }
    Some(path)
}

/// Errors of `wow plugin new`.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("plugin name {0:?} is invalid; use 1 to 64 lower-case letters, digits and `-`, starting with a letter")]
    InvalidName(String),

    #[error("{0} already exists; choose another name or --path")]
    Exists(PathBuf),

    #[error("failed to write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Creates the crate `parent/name` for a plugin of `kind` and returns its
/// folder.
pub fn create(kind: PluginKind, name: &str, parent: &Path, sdk: &SdkSource) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    write(&dir.join("src/lib.rs"), &lib_rs(kind, name))?;

    let files = [
        ("Cargo.toml".to_string(), cargo_toml(name, kind, &sdk.dependency(&dir))),
        (MANIFEST_FILE.to_string(), manifest(kind, name)),
        (".gitignore".to_string(), "/target\n/Cargo.lock\n".to_string()),
    ];
    for (file, text) in files {
        write(&dir.join(file), &text)?;
    }
    if kind == PluginKind::Task {
        write(&dir.join(EXAMPLE_DATA_FILE), EXAMPLE_DATA)?;
    }
    Ok(dir)
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ScaffoldError::InvalidName(name.to_string()))
    }
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    let io_error = |source| ScaffoldError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error)?;
    }
    fs::write(path, text).map_err(io_error)
}

fn cargo_toml(name: &str, kind: PluginKind, sdk_dependency: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
description = "A wow {kind} plugin"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
{sdk_dependency}

# The plugin is its own workspace, so that it builds outside any other.
[workspace]

# `wow plugin build` builds with this profile: without debug information
# the component is dozens of times smaller.
[profile.plugin]
inherits = "release"
debug = false
strip = true
"#
    )
}

fn manifest(kind: PluginKind, name: &str) -> String {
    let description = match kind {
        PluginKind::Task => "Sums of integers, graded by the distance to the right sum.",
        PluginKind::Elicitor => "Scores each response by the share of responses with the same answer.",
        PluginKind::Scorer => "Scores an integer answer by its distance to the reference answer.",
    };
    format!(
        r#"name = "{name}"
version = "0.1.0"
kind = "{kind}"
wit = "{WIT_VERSION}"
description = "{description}"
# Host functions the plugin calls besides `log`: generate, logprobs, embed, setting.
capabilities = []

# Optional limits below the host's, per call.
# [limits]
# fuel = 1000000000
# timeout_secs = 10.0
# memory_bytes = 268435456
"#
    )
}

fn lib_rs(kind: PluginKind, name: &str) -> String {
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let template = match kind {
        PluginKind::Task => TASK_TEMPLATE,
        PluginKind::Elicitor => ELICITOR_TEMPLATE,
        PluginKind::Scorer => SCORER_TEMPLATE,
    };
    template.replace("PLUGIN_TYPE", &type_name).replace("PLUGIN_NAME", name)
}

const EXAMPLE_DATA: &str = "\
q1\tWhat is 17 + 25?\t42
q2\tWhat is 120 + 35?\t155
q3\tWhat is 8 + 9 + 10?\t27
";

const TASK_TEMPLATE: &str = r#"//! The `PLUGIN_NAME` task: sums of integers. The dataset has one question a
//! line, `id<TAB>question<TAB>answer`; an answer is graded by its distance
//! to the right sum.

use wow_sdk::{Grade, ItemError, Message, Question, Task, TaskInfo};

pub struct PLUGIN_TYPE;

/// Returns the proxy correctness of `answer`: 1 when right, falling
/// linearly to 0 at a distance equal to the right sum's magnitude.
pub fn correctness(answer: i64, right: i64) -> f64 {
    let distance = (answer - right).unsigned_abs() as f64;
    let scale = right.unsigned_abs().max(1) as f64;
    (1.0 - distance / scale).clamp(0.0, 1.0)
}

fn parse_row(number: usize, line: &str) -> Result<Question, ItemError> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [id, text, answer] = fields[..] else {
        return Err(ItemError {
            id: format!("line {number}"),
            message: format!("expected 3 tab-separated fields, found {}", fields.len()),
        });
    };
    if answer.trim().parse::<i64>().is_err() {
        return Err(ItemError {
            id: id.into(),
            message: format!("answer {answer:?} is not an integer"),
        });
    }
    Ok(Question {
        id: id.into(),
        text: text.into(),
        reference: Some(answer.trim().into()),
        payload: answer.trim().into(),
    })
}

impl Task for PLUGIN_TYPE {
    fn describe() -> TaskInfo {
        TaskInfo {
            name: "PLUGIN_NAME".into(),
            description: "Sums of integers.".into(),
        }
    }

    fn load(dataset: Vec<u8>) -> Result<Vec<Result<Question, ItemError>>, String> {
        let text = String::from_utf8(dataset).map_err(|e| format!("the dataset is not UTF-8: {e}"))?;
        let rows = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| parse_row(index + 1, line))
            .collect();
        Ok(rows)
    }

    fn prompt(question: Question, _seed: u64) -> Vec<Message> {
        vec![
            Message::system("Answer with a single integer."),
            Message::user(&question.text),
        ]
    }

    fn extract(_question: Question, _seed: u64, response: String) -> Option<String> {
        wow_sdk::extract::last_integer(&response)
    }

    fn grade(question: Question, answer: String) -> Result<Grade, String> {
        let right: i64 = question.payload.parse().map_err(|_| "invalid payload".to_string())?;
        let answer: i64 = answer.parse().map_err(|_| format!("answer {answer:?} is not an integer"))?;
        Ok(Grade {
            correctness: correctness(answer, right),
            correct: answer == right,
        })
    }

    // The task grades wrong answers itself, so it makes no statements for a
    // plausibility scorer.
    fn statements(_question: Question, _answer: String) -> Vec<String> {
        Vec::new()
    }
}

wow_sdk::export_task!(PLUGIN_TYPE);
"#;

const ELICITOR_TEMPLATE: &str = r#"//! The `PLUGIN_NAME` elicitor: a response whose answer more of the
//! question's responses share is judged less wrong.

use std::collections::BTreeMap;

use wow_sdk::{Candidate, Elicitor, ElicitorInfo, Judgement, Question};

pub struct PLUGIN_TYPE;

/// Scores each candidate by the share of candidates with its answer; one
/// without an answer gets no score.
pub fn scores(candidates: &[Candidate]) -> Vec<Option<f64>> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for answer in candidates.iter().filter_map(|c| c.answer.as_deref()) {
        *counts.entry(answer).or_default() += 1;
    }
    let total = candidates.len().max(1) as f64;
    candidates
        .iter()
        .map(|c| c.answer.as_deref().map(|answer| counts[answer] as f64 / total))
        .collect()
}

impl Elicitor for PLUGIN_TYPE {
    fn describe() -> ElicitorInfo {
        ElicitorInfo {
            name: "PLUGIN_NAME".into(),
            description: "Agreement between responses.".into(),
        }
    }

    fn elicit(_question: Question, candidates: Vec<Candidate>, _pairs: Vec<(u32, u32)>) -> Result<Judgement, String> {
        Ok(Judgement::Scores(scores(&candidates)))
    }
}

wow_sdk::export_elicitor!(PLUGIN_TYPE);
"#;

const SCORER_TEMPLATE: &str = r#"//! The `PLUGIN_NAME` scorer: an integer answer scores 1 / (1 + distance)
//! to the question's reference answer.

use wow_sdk::{Question, Scorer, ScorerInfo};

pub struct PLUGIN_TYPE;

impl Scorer for PLUGIN_TYPE {
    fn describe() -> ScorerInfo {
        ScorerInfo {
            name: "PLUGIN_NAME".into(),
            description: "Distance to the reference answer.".into(),
        }
    }

    fn score(question: Question, answer: String) -> Result<f64, String> {
        let reference = question.reference.ok_or("the question has no reference answer")?;
        let (Ok(reference), Ok(answer)) = (reference.trim().parse::<f64>(), answer.trim().parse::<f64>()) else {
            return Ok(0.0);
        };
        let score = 1.0 / (1.0 + (answer - reference).abs());
        Ok(if score.is_finite() { score } else { 0.0 })
    }
}

wow_sdk::export_scorer!(PLUGIN_TYPE);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_is_found_inside_the_repository() {
        let repo = tempfile::tempdir().unwrap();
        fs::create_dir_all(repo.path().join("sdk")).unwrap();
        fs::write(repo.path().join("sdk/Cargo.toml"), "[package]\nname = \"wow-sdk\"\n").unwrap();
        let plugins = repo.path().join("my-plugins");
        fs::create_dir_all(&plugins).unwrap();

        let sdk = SdkSource::detect(&plugins);
        let crate_dir = create(PluginKind::Elicitor, "agree", &plugins, &sdk).unwrap();

        let cargo = fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains(r#"wow-sdk = { path = "../../sdk" }"#), "{cargo}");
    }

    #[test]
    fn sdk_outside_the_repository_comes_from_git() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = SdkSource::detect(dir.path());
        assert!(matches!(sdk, SdkSource::Git(_)), "{sdk:?}");
    }

    #[test]
    fn task_scaffold_has_example_data() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = SdkSource::Git("https://example.invalid/wow".into());
        let crate_dir = create(PluginKind::Task, "sums", dir.path(), &sdk).unwrap();

        let source = fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(source.contains("impl Task for Sums"), "{source}");
        assert!(crate_dir.join(EXAMPLE_DATA_FILE).is_file());
        let manifest = fs::read_to_string(crate_dir.join(MANIFEST_FILE)).unwrap();
        super::super::Manifest::parse(&manifest, "scaffold").expect("the scaffold manifest is valid");
    }

    #[test]
    fn invalid_names_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = SdkSource::Git(String::new());
        for name in ["", "Upper", "9lives", "a/b", "under_score"] {
            let error = create(PluginKind::Task, name, dir.path(), &sdk).unwrap_err();
            assert!(matches!(error, ScaffoldError::InvalidName(_)), "{name}: {error}");
        }
    }
}
