#![allow(clippy::unwrap_used)]

use weir_plugin_sdk::testing::MemoryBatch;
use weir_plugin_sdk::{Edit, Level, Plugin, Value};

use crate::Enrich;

fn plugin(config: &str) -> Enrich {
    Enrich::init(config).unwrap()
}

fn init_err(config: &str) -> String {
    match Enrich::init(config) {
        Ok(_) => panic!("config should be rejected: {config}"),
        Err(e) => e,
    }
}

fn two_services() -> MemoryBatch {
    let mut b = MemoryBatch::traces();
    b.resource().attr("service.name", "checkout").attr("env", "old");
    b.span("pay")
        .attr("http.url", "/pay")
        .attr("debug.a", "1")
        .attr("debug.b", "2");
    b.event()
        .attr("exception.stacktrace", "...")
        .attr("exception.type", "E");
    b.resource().attr("service.name", "cart");
    b.span("add").attr("http.url", "/add");
    b
}

#[test]
fn set_at_resource_and_item_level() {
    let mut b = two_services();
    let cfg = r#"{"operations":[
        {"set":{"deployment.environment":"prod","replicas":3,"ratio":0.5,"canary":false,"tags":["a","b"]},"level":"resource"},
        {"set":{"enriched":true},"level":"item"},
        {"set":{"env":"new","fresh":"yes"},"level":"resource","overwrite":false}
    ]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    for r in 0..2 {
        assert_eq!(
            b.attr_str(Level::Resource, r, "deployment.environment"),
            Some("prod")
        );
        assert_eq!(b.attr(Level::Resource, r, "replicas"), Some(&Value::Int(3)));
        assert_eq!(b.attr(Level::Resource, r, "ratio"), Some(&Value::Double(0.5)));
        assert_eq!(b.attr(Level::Resource, r, "canary"), Some(&Value::Bool(false)));
        assert_eq!(
            b.attr(Level::Resource, r, "tags"),
            Some(&Value::Json(r#"["a","b"]"#.into()))
        );
        assert_eq!(b.attr_str(Level::Resource, r, "fresh"), Some("yes"));
        assert_eq!(b.attr(Level::Item, r, "enriched"), Some(&Value::Bool(true)));
    }
    // overwrite = false leaves the existing value alone.
    assert_eq!(b.attr_str(Level::Resource, 0, "env"), Some("old"));
    assert_eq!(b.attr_str(Level::Resource, 1, "env"), Some("new"));
}

#[test]
fn copy_and_rename() {
    let mut b = two_services();
    let cfg = r#"{"operations":[
        {"copy":{"from":"service.name","to":"app"},"level":"resource"},
        {"rename":{"from":"http.url","to":"url.path"},"level":"item"},
        {"rename":{"from":"missing","to":"x"},"level":"item"},
        {"copy":{"from":"app","to":"env"},"level":"resource","overwrite":false}
    ]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "app"), Some("checkout"));
    assert_eq!(b.attr_str(Level::Resource, 1, "app"), Some("cart"));
    assert_eq!(b.attr_str(Level::Resource, 0, "env"), Some("old"));
    assert_eq!(b.attr_str(Level::Resource, 1, "env"), Some("cart"));
    assert_eq!(b.attr(Level::Item, 0, "http.url"), None);
    assert_eq!(b.attr_str(Level::Item, 0, "url.path"), Some("/pay"));
    assert_eq!(b.attr_str(Level::Item, 1, "url.path"), Some("/add"));
    assert_eq!(b.attr(Level::Item, 0, "x"), None);
}

#[test]
fn delete_with_globs_on_several_levels() {
    let mut b = two_services();
    let cfg = r#"{"operations":[
        {"delete":["debug.*","exception.stack*"],"level":["item","event"]},
        {"delete":"env","level":"resource"}
    ]}"#;
    let changes = b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(changes.edits.len(), 4);
    assert_eq!(b.attrs(Level::Item, 0).len(), 1);
    assert_eq!(b.attr_str(Level::Item, 0, "http.url"), Some("/pay"));
    assert_eq!(b.attr(Level::Event, 0, "exception.stacktrace"), None);
    assert_eq!(b.attr_str(Level::Event, 0, "exception.type"), Some("E"));
    assert_eq!(b.attr(Level::Resource, 0, "env"), None);
}

#[test]
fn lookup_sets_columns_from_the_table() {
    let mut b = two_services();
    b.resource().attr("service.name", "unknown-svc");
    b.span("x");
    b.resource();
    b.span("y");
    let cfg = r#"{"operations":[{
        "lookup":"service.name","level":"resource",
        "table":{
            "checkout":{"team":"payments","cost_center":"cc-1001"},
            "cart":{"team":"shop","cost_center":"cc-1002","tier":1}
        }
    }]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "team"), Some("payments"));
    assert_eq!(b.attr_str(Level::Resource, 0, "cost_center"), Some("cc-1001"));
    assert_eq!(b.attr_str(Level::Resource, 1, "team"), Some("shop"));
    assert_eq!(b.attr(Level::Resource, 1, "tier"), Some(&Value::Int(1)));
    assert_eq!(b.attr(Level::Resource, 2, "team"), None);
    assert_eq!(b.attr(Level::Resource, 3, "team"), None);
}

#[test]
fn lookup_default_row_and_overwrite() {
    let mut b = MemoryBatch::traces();
    b.resource().attr("service.name", "a").attr("team", "keep-me");
    b.span("s");
    b.resource().attr("service.name", "zzz");
    b.span("s");
    let cfg = r#"{"operations":[{
        "lookup":"service.name","level":"resource","overwrite":false,
        "table":{"a":{"team":"alpha","tier":"gold"}},
        "default":{"team":"unowned"}
    }]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "team"), Some("keep-me"));
    assert_eq!(b.attr_str(Level::Resource, 0, "tier"), Some("gold"));
    assert_eq!(b.attr_str(Level::Resource, 1, "team"), Some("unowned"));
}

#[test]
fn lookup_on_non_string_values() {
    let mut b = MemoryBatch::traces();
    b.span("a").attr("http.response.status_code", Value::Int(404));
    b.span("b").attr("http.response.status_code", Value::Int(200));
    let cfg = r#"{"operations":[{
        "lookup":"http.response.status_code","level":"item",
        "table":{"404":{"error.type":"not_found"}}
    }]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Item, 0, "error.type"), Some("not_found"));
    assert_eq!(b.attr(Level::Item, 1, "error.type"), None);
}

#[test]
fn operations_see_earlier_results() {
    let mut b = two_services();
    let cfg = r#"{"operations":[
        {"rename":{"from":"service.name","to":"svc"},"level":"resource"},
        {"lookup":"svc","level":"resource","table":{"checkout":{"team":"payments"}}},
        {"copy":{"from":"team","to":"owner"},"level":"resource"},
        {"delete":"svc","level":"resource"},
        {"copy":{"from":"svc","to":"never"},"level":"resource"},
        {"set":{"x":"1"},"level":"item"},
        {"rename":{"from":"x","to":"y"},"level":"item"}
    ]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "team"), Some("payments"));
    assert_eq!(b.attr_str(Level::Resource, 0, "owner"), Some("payments"));
    assert_eq!(b.attr(Level::Resource, 0, "svc"), None);
    assert_eq!(b.attr(Level::Resource, 0, "service.name"), None);
    assert_eq!(b.attr(Level::Resource, 0, "never"), None);
    assert_eq!(b.attr(Level::Resource, 1, "team"), None);
    assert_eq!(b.attr(Level::Item, 0, "x"), None);
    assert_eq!(b.attr_str(Level::Item, 1, "y"), Some("1"));
}

#[test]
fn kubernetes_fills_only_missing_resource_attributes() {
    let mut b = MemoryBatch::logs();
    b.resource().attr("k8s.pod.name", "from-sdk");
    b.log("a");
    b.resource();
    b.log("b");
    let cfg = r#"{"operations":[{"kubernetes":{
        "pod_name":"web-7d9f","namespace":"shop","node_name":"node-3","pod_uid":"0f1e","cluster_name":""
    }}]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "k8s.pod.name"), Some("from-sdk"));
    assert_eq!(b.attr_str(Level::Resource, 0, "k8s.namespace.name"), Some("shop"));
    assert_eq!(b.attr_str(Level::Resource, 1, "k8s.pod.name"), Some("web-7d9f"));
    assert_eq!(b.attr_str(Level::Resource, 1, "k8s.node.name"), Some("node-3"));
    assert_eq!(b.attr_str(Level::Resource, 1, "k8s.pod.uid"), Some("0f1e"));
    // Empty values (an unset downward-API variable) are skipped.
    assert_eq!(b.attr(Level::Resource, 1, "k8s.cluster.name"), None);
    assert_eq!(b.attr(Level::Item, 0, "k8s.pod.name"), None);
}

#[test]
fn resource_only_work_does_not_touch_items() {
    let mut b = two_services();
    let changes = b
        .process(&mut plugin(
            r#"{"operations":[{"set":{"a":"b"},"level":"resource"}]}"#,
        ))
        .unwrap();
    assert_eq!(changes.edits.len(), 2);
    assert!(changes.edits.iter().all(|e| matches!(
        e,
        Edit::Attribute {
            level: Level::Resource,
            ..
        }
    )));
}

#[test]
fn event_and_link_levels_apply_to_spans_only() {
    let cfg = r#"{"operations":[{"set":{"seen":true},"level":["event","link"]}]}"#;
    let mut b = two_services();
    b.link().attr("l", "1");
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr(Level::Event, 0, "seen"), Some(&Value::Bool(true)));
    assert_eq!(b.attr(Level::Link, 0, "seen"), Some(&Value::Bool(true)));
    let mut logs = MemoryBatch::logs();
    logs.log("x");
    assert!(logs.process(&mut plugin(cfg)).unwrap().is_empty());
}

#[test]
fn nothing_to_do_means_no_edits() {
    let mut b = two_services();
    let cfg = r#"{"operations":[
        {"copy":{"from":"nope","to":"x"},"level":"item"},
        {"delete":["zzz.*"],"level":"item"},
        {"lookup":"service.name","level":"resource","table":{"other":{"t":"x"}}}
    ]}"#;
    assert!(b.process(&mut plugin(cfg)).unwrap().is_empty());
    assert!(b.process(&mut plugin("{}")).unwrap().is_empty());
}

#[test]
fn metrics_data_points_are_items() {
    let mut m = MemoryBatch::metrics();
    m.resource().attr("service.name", "checkout");
    m.point("requests").attr("http.route", "/pay");
    let cfg = r#"{"operations":[
        {"lookup":"service.name","level":"resource","table":{"checkout":{"team":"payments"}}},
        {"rename":{"from":"http.route","to":"route"},"level":"item"}
    ]}"#;
    m.process(&mut plugin(cfg)).unwrap();
    assert_eq!(m.attr_str(Level::Resource, 0, "team"), Some("payments"));
    assert_eq!(m.attr_str(Level::Item, 0, "route"), Some("/pay"));
}

#[test]
fn bad_configs_are_rejected_with_the_key() {
    let e = init_err(r#"{"operations":[{"level":"item"}]}"#);
    assert!(e.starts_with("operations[0]: give exactly one"), "{e}");
    let e = init_err(r#"{"operations":[{"set":{"a":1},"delete":"b","level":"item"}]}"#);
    assert!(e.starts_with("operations[0]: give exactly one"), "{e}");
    let e = init_err(r#"{"operations":[{"set":{"a":1},"level":"item"},{"set":{"a":1}}]}"#);
    assert!(e.starts_with("operations[1].level:"), "{e}");
    let e = init_err(r#"{"operations":[{"set":{"a":1},"level":"spans"}]}"#);
    assert!(
        e.starts_with("operations[0].level: unknown level \"spans\""),
        "{e}"
    );
    let e = init_err(r#"{"operations":[{"lookup":"service.name","level":"resource"}]}"#);
    assert!(e.starts_with("operations[0].table:"), "{e}");
    let e = init_err(r#"{"operations":[{"set":{"a":1},"table":{},"level":"item"}]}"#);
    assert!(e.contains("table"), "{e}");
    let e = init_err(r#"{"operations":[{"set":{"a":null},"level":"item"}]}"#);
    assert!(e.starts_with("operations[0].set.\"a\": null"), "{e}");
    let e = init_err(r#"{"operations":[{"kubernetes":{"pod_name":"x"},"level":"item"}]}"#);
    assert!(e.starts_with("operations[0].level:"), "{e}");
    let e = init_err(r#"{"operations":[{"kubernetes":{"pod_name":"${env:POD_NAME}"}}]}"#);
    assert!(e.starts_with("operations[0].kubernetes.pod_name:"), "{e}");
    let e = init_err(r#"{"operations":[{"kubernetes":{}}]}"#);
    assert!(e.starts_with("operations[0].kubernetes:"), "{e}");
    let e = init_err(r#"{"operations":[{"kubernetes":{"pod":"x"}}]}"#);
    assert!(e.contains("pod"), "{e}");
    let e = init_err(r#"{"operations":[{"delete":"x","level":"item","overwrite":true}]}"#);
    assert!(e.starts_with("operations[0].overwrite:"), "{e}");
    let e = init_err(r#"{"ops":[]}"#);
    assert!(e.contains("ops"), "{e}");
}

#[test]
fn plugin_can_move_between_threads() {
    // The host's native runner pools instances across worker threads.
    fn send<T: Send + 'static>() {}
    send::<Enrich>();
}
