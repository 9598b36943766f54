//! Bindings that `wit-bindgen` generates from `wit/wow.wit`, one module per
//! world.
//!
//! The three worlds share the `types` and `host` interfaces. The task world
//! generates them, and the other two worlds reuse them through `with`, so a
//! `Question` is the same Rust type in every plugin kind.

/// Bindings of the `task-plugin` world, including the shared interfaces.
pub mod task_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "task-plugin",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "wow_sdk::bindings::task_world",
    });
}

/// Bindings of the `elicitor-plugin` world.
pub mod elicitor_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "elicitor-plugin",
        with: {
            "wow:plugin/types@0.1.0": crate::bindings::task_world::wow::plugin::types,
            "wow:plugin/host@0.1.0": crate::bindings::task_world::wow::plugin::host,
        },
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "wow_sdk::bindings::elicitor_world",
    });
}

/// Bindings of the `scorer-plugin` world.
pub mod scorer_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "scorer-plugin",
        with: {
            "wow:plugin/types@0.1.0": crate::bindings::task_world::wow::plugin::types,
            "wow:plugin/host@0.1.0": crate::bindings::task_world::wow::plugin::host,
        },
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "wow_sdk::bindings::scorer_world",
    });
}
