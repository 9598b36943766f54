//! `format!`-style logging macros over [`host::log`](crate::host::log).

/// Logs a `format!`-style message at [`Level::Error`](crate::host::Level::Error).
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Error, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Warn`](crate::host::Level::Warn).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Info`](crate::host::Level::Info).
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Debug`](crate::host::Level::Debug).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at [`Level::Trace`](crate::host::Level::Trace).
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Trace, &::std::format!($($arg)*)) };
}
