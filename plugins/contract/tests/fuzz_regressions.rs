//! Change lists the `plugin_changes` fuzz target (fuzz/, docs/fuzzing.md)
//! found, checked with the same function the host and the SDK's test batch
//! use.

use weir_plugin_contract::validate::MAX_JSON_DEPTH;
use weir_plugin_contract::{Changes, Edit, Level, Shape, Signal, Value, check_changes};

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

fn set_attribute(json: String) -> Changes {
    Changes {
        edits: vec![Edit::Attribute {
            level: Level::Item,
            entity: 0,
            key: "service.name".into(),
            value: Some(Value::Json(json)),
        }],
        ..Changes::default()
    }
}

/// A span attribute set to JSON nested ~100 objects deep was applied, and
/// the host then encoded a request its own receivers (and prost, the
/// Collector) refuse: "AnyValue nested too deep".
#[test]
fn json_values_nested_past_the_limit_are_refused() {
    let shape = Shape {
        signal: Signal::Traces,
        counts: [1, 1, 1, 0, 0, 0, 0],
    };
    check_changes(&shape, &set_attribute(nested_objects(MAX_JSON_DEPTH))).expect("at the limit");
    let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
    for json in [nested_objects(MAX_JSON_DEPTH + 1), nested_objects(100), deep] {
        let e = check_changes(&shape, &set_attribute(json)).expect_err("too deep");
        assert!(
            e.0.starts_with("edit 0: attribute \"service.name\": json value nests"),
            "{e}"
        );
        assert!(e.0.contains("flatten it"), "{e}");
    }
}
