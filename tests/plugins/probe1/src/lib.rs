//! A `weir:plugin@0.1.0` plugin written against the frozen WIT alone: tags every
//! item with `probe1 = "0.1.0"` and the batch's sequence number, so tests see
//! that weir still loads and runs 0.1.0 components.

#[cfg(target_arch = "wasm32")]
// The generated bindings export functions by name (`export_name`), which the
// workspace's `unsafe_code` lint counts as unsafe.
#[allow(unsafe_code)]
mod guest {
    use weir::plugin::types::{AttributeEdit, Edit, Level, Value};

    wit_bindgen::generate!({
        path: "../../../wit/plugin.wit",
        world: "plugin",
    });

    struct Probe;

    fn process(batch: &Batch, ctx: Context) -> Result<(), PluginError> {
        let mut edits = Vec::new();
        for item in 0..batch.len() {
            for (key, value) in [
                ("probe1", Value::Str("0.1.0".into())),
                ("probe1.sequence", Value::Int(ctx.sequence as i64)),
            ] {
                edits.push(Edit::Attribute(AttributeEdit {
                    level: Level::Item,
                    entity: item,
                    key: key.into(),
                    value: Some(value),
                }));
            }
        }
        batch.apply(&edits).map_err(|message| PluginError { message })
    }

    impl Guest for Probe {
        fn init(_config: String) -> Result<(), String> {
            Ok(())
        }

        fn process_traces(batch: &Batch, ctx: Context) -> Result<(), PluginError> {
            process(batch, ctx)
        }

        fn process_logs(batch: &Batch, ctx: Context) -> Result<(), PluginError> {
            process(batch, ctx)
        }

        fn process_metrics(batch: &Batch, ctx: Context) -> Result<(), PluginError> {
            process(batch, ctx)
        }
    }

    export!(Probe);
}
