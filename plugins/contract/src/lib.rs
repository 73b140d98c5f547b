//! The contract between weir and its plugins (wit/plugin.wit), in Rust: one
//! implementation, used by the host (weir-batch, weir-wasm), the Rust SDK and
//! the SDK's in-memory test batch, so that what a plugin's unit tests accept
//! is exactly what the host accepts.
//!
//! - [`types`]: the contract's types and the value encoding inside columns;
//! - [`matcher`] and [`glob`]: how host-side matching compares values;
//! - [`validate`]: which fields an edit may set, with which value type, and
//!   the check of a whole change list against a batch's [`Shape`] — done
//!   completely before anything is changed, so changes apply all or nothing.

pub mod glob;
pub mod matcher;
pub mod types;
pub mod validate;

pub use matcher::Matcher;

pub use types::*;
pub use validate::{
    ChangeError, FieldType, Shape, check_changes, check_edit, check_items, check_value, settable,
};
