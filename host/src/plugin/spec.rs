//! Elicitor specifications: a plugin name with the settings a run gives it,
//! written `NAME` or `NAME:KEY=VALUE,KEY=VALUE` on the command line.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One elicitation method of a run: an elicitor plugin and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElicitorSpec {
    pub plugin: String,
    pub settings: BTreeMap<String, String>,
}

impl ElicitorSpec {
    /// Returns the method name used in tables and file names: the plugin
    /// name, then `-KEY-VALUE` for each setting in key order, such as
    /// `score-k-5` for `score:k=5`.
    pub fn method(&self) -> String {
        let mut method = self.plugin.clone();
        for (key, value) in &self.settings {
            method.push('-');
            method.push_str(key);
            method.push('-');
            method.push_str(value);
        }
        method
    }
}

/// Why an elicitor specification is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid elicitor {spec:?}: {reason}; write NAME or NAME:KEY=VALUE,KEY=VALUE, e.g. score:k=5")]
pub struct SpecError {
    spec: String,
    reason: String,
}

impl FromStr for ElicitorSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let invalid = |reason: &str| SpecError {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (plugin, settings_text) = spec.split_once(':').unwrap_or((spec, ""));
        if !is_name(plugin) {
            return Err(invalid("the plugin name must be letters, digits, `-` or `_`"));
        }

        let mut settings = BTreeMap::new();
        for setting in settings_text.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| invalid(&format!("setting {setting:?} has no `=`")))?;
            if !is_name(key) || !is_name(value) {
                return Err(invalid(&format!(
                    "setting {setting:?} must be KEY=VALUE of letters, digits, `-`, `_` or `.`"
                )));
            }
            if settings.insert(key.to_string(), value.to_string()).is_some() {
                return Err(invalid(&format!("setting {key:?} is given twice")));
            }
        }
        Ok(Self {
            plugin: plugin.to_string(),
            settings,
        })
    }
}

impl fmt::Display for ElicitorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.plugin)?;
        let settings: Vec<String> = self.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !settings.is_empty() {
            write!(f, ":{}", settings.join(","))?;
        }
        Ok(())
    }
}

/// Names and values are kept to characters that are safe in file names.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_name_has_no_settings() {
        let spec: ElicitorSpec = "pairwise".parse().unwrap();
        assert_eq!(spec.plugin, "pairwise");
        assert!(spec.settings.is_empty());
        assert_eq!(spec.method(), "pairwise");
    }

    #[test]
    fn settings_parse_and_name_the_method() {
        let spec: ElicitorSpec = "score:k=5,max-tokens=64".parse().unwrap();
        assert_eq!(spec.settings["k"], "5");
        assert_eq!(spec.settings["max-tokens"], "64");
        assert_eq!(spec.method(), "score-k-5-max-tokens-64");
        assert_eq!(spec.to_string(), "score:k=5,max-tokens=64");
    }

    #[test]
    fn malformed_specs_are_rejected() {
        for spec in ["", "score:k", "score:k=5,k=6", "sco re", "score:k=../x", ":k=1"] {
            assert!(spec.parse::<ElicitorSpec>().is_err(), "{spec:?} parsed");
        }
    }
}
