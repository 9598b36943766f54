//! Errors of plugin loading and plugin calls.

use std::fmt;

/// Cause of a failed plugin call.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureKind {
    /// The fuel budget of the call ran out, usually an endless loop.
    OutOfFuel { fuel: u64 },
    /// Guest code ran past the call's wall-clock limit.
    Timeout { seconds: f64 },
    /// The instance asked for more linear memory than its cap.
    MemoryLimit { bytes: u64 },
    /// The guest exhausted its call stack, usually unbounded recursion.
    StackOverflow,
    /// Any other trap; `output` contains the tail of the guest's stderr, where
    /// Rust plugins print their panic message.
    Trap { message: String, output: String },
    /// The guest returned an error value.
    Guest(String),
    /// The guest returned a value the host rejects (NaN, out of range, wrong
    /// length).
    InvalidOutput(String),
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::OutOfFuel { fuel } => write!(
                f,
                "ran out of fuel after {fuel} units (an endless loop, or more work than allowed: raise --plugin-fuel)"
            ),
            FailureKind::Timeout { seconds } => {
                write!(
                    f,
                    "timed out after {seconds:.1} s of guest time (raise --plugin-timeout)"
                )
            }
            FailureKind::MemoryLimit { bytes } => write!(
                f,
                "exceeded its memory limit of {} MiB (raise --plugin-memory)",
                bytes / (1024 * 1024)
            ),
            FailureKind::StackOverflow => f.write_str("exhausted its call stack (unbounded recursion?)"),
            FailureKind::Trap { message, output } if output.is_empty() => write!(f, "trapped: {message}"),
            FailureKind::Trap { message, output } => write!(f, "trapped: {message}; plugin output: {output}"),
            FailureKind::Guest(message) => write!(f, "returned an error: {message}"),
            FailureKind::InvalidOutput(message) => write!(f, "returned invalid output: {message}"),
        }
    }
}

impl FailureKind {
    /// Returns whether the failure is the sandbox stopping or rejecting the
    /// plugin, as opposed to an error value the plugin returned on purpose.
    pub fn is_fault(&self) -> bool {
        !matches!(self, FailureKind::Guest(_))
    }
}

/// Errors of the plugin layer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("invalid plugin manifest {origin}: {message}")]
    Manifest { origin: String, message: String },

    #[error(
        "plugin `{plugin}` targets wow:plugin@{found} but this host implements wow:plugin@{host}; rebuild the plugin against the matching wow-sdk",
        host = super::WIT_VERSION
    )]
    WitVersion { plugin: String, found: String },

    #[error("plugin `{plugin}` is a {found} plugin, but a {expected} plugin is needed here")]
    WrongKind {
        plugin: String,
        expected: super::PluginKind,
        found: super::PluginKind,
    },

    #[error("plugin `{name}` not found; available plugins: {available}")]
    NotFound { name: String, available: String },

    #[error("failed to read plugin {path}: {source}")]
    Io { path: String, source: std::io::Error },

    #[error("failed to load plugin `{plugin}`: {message}")]
    Load { plugin: String, message: String },

    #[error(
        "plugin `{plugin}` imports the host function `{function}`, but its manifest does not declare the `{capability}` capability; add \"{capability}\" to `capabilities` in its wow-plugin.toml if the plugin should have it"
    )]
    Capability {
        plugin: String,
        function: String,
        capability: super::Capability,
    },

    #[error("plugin `{plugin}` imports `{import}`, which the sandbox does not provide: {reason}")]
    ForbiddenImport {
        plugin: String,
        import: String,
        reason: String,
    },

    #[error(
        "plugin `{plugin}` is disabled for the rest of this run after {failures} consecutive failed calls; the last one: {last}"
    )]
    Disabled {
        plugin: String,
        failures: u32,
        last: String,
    },

    #[error("plugin `{plugin}` failed in `{call}` for {item}: {kind}")]
    Call {
        plugin: String,
        call: &'static str,
        item: String,
        kind: FailureKind,
    },
}

impl PluginError {
    /// Returns the failure kind of a failed call, if this is one.
    pub fn failure(&self) -> Option<&FailureKind> {
        match self {
            PluginError::Call { kind, .. } => Some(kind),
            _ => None,
        }
    }
}
