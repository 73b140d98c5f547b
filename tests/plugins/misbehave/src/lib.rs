//! Misbehaves on purpose, as its config says, so tests can check that weir
//! contains each failure and applies the plugin's failure policy.

use serde::Deserialize;
use weir_plugin_sdk::{Batch, Field, Level, Plugin, PluginError, Value, parse_config};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// Behaves: tags every item with misbehave=ok.
    Ok,
    /// Does nothing at all (for measuring the bare cost of a call).
    Noop,
    /// Never returns.
    Loop,
    /// Waits in WASI (a clock's pollable) for a minute: no guest code runs
    /// for the epoch deadline to interrupt.
    Sleep,
    /// Allocates until the memory cap stops it.
    Oom,
    /// Traps (Rust panic → unreachable).
    Trap,
    /// Returns an error.
    Error,
    /// Sends edits that name items that do not exist.
    Garbage,
    /// Sends four valid edits, then one whose value has the wrong type (an
    /// int for a span name): the host must apply none of them.
    HalfBad,
    /// Prints `lines` lines to stdout and as many to stderr.
    Chatty,
    /// Keeps state: tags every item with misbehave.seen = the batches this
    /// instance has seen (a reload that keeps the instance keeps counting).
    Count,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    /// Misbehave only on every n-th batch (1 = always).
    #[serde(default = "one")]
    every: u64,
    /// Lines printed to each stream per batch (chatty).
    #[serde(default = "ten_thousand")]
    lines: u64,
}

fn one() -> u64 {
    1
}

fn ten_thousand() -> u64 {
    10_000
}

pub struct Misbehave {
    config: Config,
    seen: u64,
}

impl Plugin for Misbehave {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = parse_config(config)?;
        if config.every == 0 {
            return Err("every: must be at least 1".into());
        }
        Ok(Misbehave { config, seen: 0 })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), PluginError> {
        self.seen += 1;
        let mode = if self.config.mode == Mode::Count || self.seen.is_multiple_of(self.config.every) {
            self.config.mode
        } else {
            Mode::Ok
        };
        match mode {
            Mode::Noop => Ok(()),
            Mode::Ok => {
                for i in 0..batch.len() {
                    batch.set_attribute(Level::Item, i, "misbehave", "ok");
                }
                Ok(())
            }
            Mode::Loop => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Mode::Oom => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hog);
                }
            }
            Mode::Trap => panic!("misbehave: deliberate trap"),
            Mode::Sleep => {
                std::thread::sleep(std::time::Duration::from_secs(60));
                Ok(())
            }
            Mode::Error => Err(PluginError::new("misbehave: deliberate error")),
            Mode::Garbage => {
                batch.set_attribute(Level::Item, 1 << 30, "k", "v");
                batch.drop_item(1 << 30);
                Ok(())
            }
            Mode::Count => {
                let seen = self.seen.to_string();
                for i in 0..batch.len() {
                    batch.set_attribute(Level::Item, i, "misbehave.seen", seen.as_str());
                }
                Ok(())
            }
            Mode::HalfBad => {
                for i in 0..batch.len().min(4) {
                    batch.set_attribute(Level::Item, i, "misbehave", "half");
                }
                batch.set_field(Field::Name, 0, Value::Int(5));
                Ok(())
            }
            Mode::Chatty => {
                for i in 0..self.config.lines {
                    println!("misbehave stdout line {i}");
                    eprintln!("misbehave stderr line {i}");
                }
                Ok(())
            }
        }
    }
}

weir_plugin_sdk::export_plugin!(Misbehave);

#[cfg(test)]
mod tests {
    use weir_plugin_sdk::testing::MemoryBatch;

    use super::*;

    #[test]
    fn the_test_batch_refuses_a_half_bad_edit_list_whole_like_the_host() {
        let mut batch = MemoryBatch::traces();
        for i in 0..5 {
            batch.span(&format!("s{i}"));
        }
        let mut plugin = Misbehave::init(r#"{"mode": "half-bad"}"#).expect("init");
        let err = batch.process(&mut plugin).expect_err("refused");
        assert!(
            err.message
                .contains("edit 4: field edit of item 0 sets Name to int 5"),
            "{}",
            err.message
        );
        assert_eq!(batch.attr(Level::Item, 0, "misbehave"), None, "nothing applied");
    }
}
