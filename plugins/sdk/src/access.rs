//! The read side of a batch, as the host provides it. Under Wasm each call is
//! one call across the component boundary; natively it is a direct call.

use crate::types::{AttributeTable, Column, Field, Level, Signal};

pub trait BatchAccess {
    fn signal(&self) -> Signal;
    fn len(&self) -> u32;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn count(&self, level: Level) -> u32;
    fn owners(&self, level: Level) -> Vec<u32>;
    fn read_field(&self, field: Field) -> Column;
    fn read_attribute(&self, level: Level, key: &str) -> Column;
    fn read_attributes(&self, level: Level) -> AttributeTable;
    fn to_otlp(&self) -> Vec<u8>;
}
