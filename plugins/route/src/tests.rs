#![allow(clippy::unwrap_used)]

use weir_plugin_sdk::testing::MemoryBatch;
use weir_plugin_sdk::{Plugin, Value};

use crate::Route;

fn plugin(config: &str) -> Route {
    Route::init(config).unwrap()
}

fn init_err(config: &str) -> String {
    match Route::init(config) {
        Ok(_) => panic!("config should be rejected: {config}"),
        Err(e) => e,
    }
}

fn routes(b: &MemoryBatch) -> Vec<Option<&str>> {
    (0..b.items().len()).map(|i| b.route_of(i)).collect()
}

fn tenants() -> MemoryBatch {
    let mut b = MemoryBatch::traces();
    b.resource()
        .attr("tenant", "acme")
        .attr("service.name", "checkout");
    b.span("a");
    b.span("b").attr("tenant", "globex");
    b.resource()
        .attr("tenant", "initech")
        .attr("service.name", "cart");
    b.span("c");
    b.resource().attr("service.name", "batch-nightly");
    b.span("d");
    b
}

#[test]
fn equality_on_resource_attributes() {
    let mut b = tenants();
    let cfg = r#"{"rules":[{"route":"acme","attribute":"tenant","level":"resource","equals":"acme"}]}"#;
    let changes = b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(changes.routes, vec![("acme".to_string(), vec![0, 1])]);
    assert_eq!(routes(&b), [Some("acme"), Some("acme"), None, None]);
}

#[test]
fn level_any_prefers_the_item_attribute() {
    let mut b = tenants();
    let cfg = r#"{"rules":[
        {"route":"acme","attribute":"tenant","equals":"acme"},
        {"route":"globex","attribute":"tenant","equals":"globex"}
    ]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(routes(&b), [Some("acme"), Some("globex"), None, None]);
    // Item level only: the resource's tenant does not count.
    let mut b = tenants();
    b.process(&mut plugin(
        r#"{"rules":[{"route":"t","attribute":"tenant","level":"item"}]}"#,
    ))
    .unwrap();
    assert_eq!(routes(&b), [None, Some("t"), None, None]);
}

#[test]
fn first_match_wins_and_one_call_per_route() {
    let mut b = tenants();
    let cfg = r#"{"rules":[
        {"route":"batch","attribute":"service.name","glob":"batch-*"},
        {"route":"known","attribute":"tenant","in":["acme","initech"]},
        {"route":"batch","attribute":"tenant","equals":"initech"},
        {"route":"any-tenant","attribute":"tenant"}
    ]}"#;
    let changes = b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(
        routes(&b),
        [Some("known"), Some("any-tenant"), Some("known"), Some("batch")]
    );
    assert_eq!(
        changes.routes,
        vec![
            ("batch".to_string(), vec![3]),
            ("known".to_string(), vec![0, 2]),
            ("any-tenant".to_string(), vec![1]),
        ]
    );
}

#[test]
fn regex_and_glob_matchers() {
    let mut b = tenants();
    let cfg = r#"{"rules":[
        {"route":"c","attribute":"service.name","level":"resource","regex":"^c(heckout|art)$"},
        {"route":"g","attribute":"tenant","glob":"glo*"}
    ]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(routes(&b), [Some("c"), Some("c"), Some("c"), None]);
}

#[test]
fn non_string_values_compare_as_text() {
    let mut b = MemoryBatch::traces();
    b.span("a").attr("http.response.status_code", Value::Int(503));
    b.span("b").attr("http.response.status_code", Value::Int(200));
    b.span("c").attr("sampled", Value::Bool(true));
    b.span("d").attr("raw", Value::Bytes(vec![1, 2]));
    let cfg = r#"{"rules":[
        {"route":"errors","attribute":"http.response.status_code","regex":"^5"},
        {"route":"flagged","attribute":"sampled","equals":"true"},
        {"route":"raw","attribute":"raw","equals":"x"}
    ]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(routes(&b), [Some("errors"), None, Some("flagged"), None]);
}

#[test]
fn logs_by_severity() {
    let mut b = MemoryBatch::logs();
    b.resource().attr("tenant", "acme");
    for sev in [5, 9, 13, 17, 21, 0] {
        b.log("m").severity(sev, "");
    }
    let cfg = r#"{"rules":[
        {"route":"pager","severity_min":21},
        {"route":"errors","severity_min":17,"severity_max":20},
        {"route":"acme-debug","attribute":"tenant","equals":"acme","severity_max":8}
    ]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(
        routes(&b),
        [
            Some("acme-debug"),
            None,
            None,
            Some("errors"),
            Some("pager"),
            Some("acme-debug")
        ]
    );
}

#[test]
fn severity_rules_skip_other_signals() {
    let cfg = r#"{"rules":[{"route":"errors","severity_min":17},{"route":"acme","attribute":"tenant","equals":"acme"}]}"#;
    let mut b = tenants();
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(routes(&b), [Some("acme"), None, None, None]);
}

#[test]
fn signals_filter() {
    let cfg = r#"{"rules":[{"route":"m","attribute":"tenant","signals":["metrics"]}]}"#;
    let mut b = tenants();
    assert!(b.process(&mut plugin(cfg)).unwrap().is_empty());
    let mut m = MemoryBatch::metrics();
    m.resource().attr("tenant", "x");
    m.point("requests");
    m.process(&mut plugin(cfg)).unwrap();
    assert_eq!(m.route_of(0), Some("m"));
}

#[test]
fn large_in_lists() {
    let list: Vec<String> = (0..50).map(|i| format!("\"t{i}\"")).collect();
    let cfg = format!(
        r#"{{"rules":[{{"route":"r","attribute":"tenant","in":[{}]}}]}}"#,
        list.join(",")
    );
    let mut b = MemoryBatch::traces();
    b.span("a").attr("tenant", "t42");
    b.span("b").attr("tenant", "t50");
    b.process(&mut plugin(&cfg)).unwrap();
    assert_eq!(routes(&b), [Some("r"), None]);
}

#[test]
fn no_match_no_routes() {
    let mut b = tenants();
    let cfg = r#"{"rules":[{"route":"x","attribute":"tenant","equals":"nobody"}]}"#;
    assert!(b.process(&mut plugin(cfg)).unwrap().is_empty());
    assert!(b.process(&mut plugin("{}")).unwrap().is_empty());
}

#[test]
fn many_items() {
    let mut b = MemoryBatch::traces();
    for i in 0..1_000 {
        b.span("s").attr("tenant", ["a", "b", "c", "d"][i % 4]);
    }
    let cfg = r#"{"rules":[
        {"route":"ra","attribute":"tenant","level":"item","equals":"a"},
        {"route":"rb","attribute":"tenant","level":"item","equals":"b"}
    ]}"#;
    let changes = b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(changes.routes.len(), 2);
    assert_eq!(changes.routes[0].1.len(), 250);
    assert_eq!(changes.routes[1].1.len(), 250);
}

#[test]
fn bad_configs_are_rejected_with_the_key() {
    let e = init_err(r#"{"rules":[{"route":"x","attribute":"a","regex":"(oops"}]}"#);
    assert!(e.starts_with("rules[0].regex: invalid regular expression"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x","attribute":"a","equals":"1","glob":"*"}]}"#);
    assert!(e.starts_with("rules[0]: give at most one"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x","equals":"1"}]}"#);
    assert!(e.starts_with("rules[0].attribute:"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x"}]}"#);
    assert!(e.starts_with("rules[0]: give a condition"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x","severity_min":20,"severity_max":10}]}"#);
    assert!(e.starts_with("rules[0]: severity_min (20)"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"","attribute":"a"}]}"#);
    assert!(e.starts_with("rules[0].route:"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x","attribute":"a","level":"span"}]}"#);
    assert!(e.starts_with("rules[0].level: unknown level \"span\""), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x","attribute":"a","signals":"spans"}]}"#);
    assert!(e.starts_with("rules[0].signals:"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x","severity_min":1,"signals":["traces"]}]}"#);
    assert!(
        e.starts_with("rules[0]: severity_min/severity_max only apply to logs"),
        "{e}"
    );
    let e = init_err(r#"{"rules":[{"route":"x","attribute":"a","in":[]}]}"#);
    assert!(e.starts_with("rules[0].in:"), "{e}");
    let e = init_err(r#"{"rules":[{"attribute":"a"}]}"#);
    assert!(e.contains("route"), "{e}");
    let e = init_err(r#"{"rules":[{"route":"x","attribute":"a","equal":"b"}]}"#);
    assert!(e.contains("equal"), "{e}");
}

#[test]
fn plugin_can_move_between_threads() {
    // The host's native runner pools instances across worker threads.
    fn send<T: Send + 'static>() {}
    send::<Route>();
}
