//! Records shared by the host and every plugin kind, with constructors.

pub use crate::bindings::task_world::wow::plugin::types::{
    Candidate, Grade, ItemError, Judgement, Message, Preference, Question,
};

impl Message {
    /// Builds a chat turn with `role` `system`, `user` or `assistant`.
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }

    /// Builds a `system` turn.
    pub fn system(content: &str) -> Self {
        Self::new("system", content)
    }

    /// Builds a `user` turn.
    pub fn user(content: &str) -> Self {
        Self::new("user", content)
    }

    /// Builds an `assistant` turn.
    pub fn assistant(content: &str) -> Self {
        Self::new("assistant", content)
    }
}
