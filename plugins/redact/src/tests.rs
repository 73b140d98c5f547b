#![allow(clippy::unwrap_used)]

use serde_json::{Value as J, json};
use sha2::{Digest, Sha256};
use weir_plugin_sdk::testing::MemoryBatch;
use weir_plugin_sdk::{Level, Plugin, Value};

use crate::Redact;

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

fn plugin(config: &str) -> Redact {
    Redact::init(config).unwrap()
}

fn init_err(config: &str) -> String {
    match Redact::init(config) {
        Ok(_) => panic!("config should be rejected: {config}"),
        Err(e) => e,
    }
}

/// One span with one attribute, redacted with `config`; the attribute's new value.
fn redact_one(config: &str, value: &str) -> Option<Value> {
    let mut b = MemoryBatch::traces();
    b.span("s").attr("v", value);
    b.process(&mut plugin(config)).unwrap();
    b.attr(Level::Item, 0, "v").cloned()
}

fn s(v: &str) -> Option<Value> {
    Some(Value::Str(v.into()))
}

fn sha(salt: &str, v: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(v.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn default_detectors_mask_the_matched_part() {
    assert_eq!(redact_one("{}", "mail jane@example.com now"), s("mail *** now"));
    assert_eq!(redact_one("{}", "card 4111 1111 1111 1111."), s("card ***."));
    assert_eq!(
        redact_one("{}", "Authorization: Bearer abc123=="),
        s("Authorization: Bearer ***")
    );
    assert_eq!(redact_one("{}", &format!("token={JWT}")), s("token=***"));
    // Not on by default: IP addresses.
    assert_eq!(redact_one("{}", "from 10.1.2.3"), s("from 10.1.2.3"));
}

#[test]
fn clean_values_produce_no_edits() {
    let mut b = MemoryBatch::traces();
    b.resource().attr("service.name", "checkout");
    b.span("GET /users/{id}")
        .attr("http.status_code", Value::Int(200))
        .attr("note", "all fine 12:30");
    let mut p = plugin("{}");
    assert!(b.process(&mut p).unwrap().is_empty());
    assert_eq!(p.redacted_count(), 0);
}

#[test]
fn credit_card_needs_luhn() {
    let cfg = r#"{"detectors":["credit_card"]}"#;
    assert_eq!(redact_one(cfg, "4111111111111111"), s("***"));
    assert_eq!(redact_one(cfg, "5555-5555-5555-4444"), s("***"));
    assert_eq!(redact_one(cfg, "4111111111111112"), s("4111111111111112"));
    assert_eq!(
        redact_one(cfg, "order 4111 1111 1111 1121"),
        s("order 4111 1111 1111 1121")
    );
    assert_eq!(
        redact_one(cfg, "ts 1712345678901234567"),
        s("ts 1712345678901234567")
    );
}

#[test]
fn ip_detectors() {
    let cfg = r#"{"detectors":["ipv4","ipv6"]}"#;
    assert_eq!(redact_one(cfg, "peer 192.168.0.1:8080"), s("peer ***:8080"));
    assert_eq!(redact_one(cfg, "[2001:db8::7]:443"), s("[***]:443"));
    assert_eq!(redact_one(cfg, "::ffff:10.0.0.1"), s("***"));
    assert_eq!(
        redact_one(cfg, "version 1.2.3 at 12:30:45"),
        s("version 1.2.3 at 12:30:45")
    );
    assert_eq!(redact_one(cfg, "300.1.1.1"), s("300.1.1.1"));
}

#[test]
fn only_selected_detectors_run() {
    let cfg = r#"{"detectors":["jwt"]}"#;
    assert_eq!(redact_one(cfg, "a@b.io"), s("a@b.io"));
    assert_eq!(redact_one(cfg, JWT), s("***"));
    assert_eq!(redact_one(r#"{"detectors":[]}"#, "a@b.io"), s("a@b.io"));
}

#[test]
fn overlapping_hits_merge() {
    // Bearer and JWT both match the token; one mask results.
    assert_eq!(redact_one("{}", &format!("Bearer {JWT}")), s("Bearer ***"));
    let cfg = r#"{"detectors":["email"],"patterns":[{"regex":"jane"}]}"#;
    assert_eq!(redact_one(cfg, "x jane@example.com y"), s("x *** y"));
}

#[test]
fn whole_value_and_custom_mask() {
    let cfg = r#"{"whole_value":true,"mask":"[redacted]"}"#;
    assert_eq!(redact_one(cfg, "mail jane@example.com now"), s("[redacted]"));
    assert_eq!(redact_one(cfg, "nothing here"), s("nothing here"));
}

#[test]
fn custom_patterns_with_overrides() {
    let cfg = r#"{
        "salt": "pepper",
        "detectors": [],
        "patterns": [
            {"name": "ssn", "regex": "\\b\\d{3}-\\d{2}-\\d{4}\\b"},
            {"regex": "cust-[0-9]+", "action": "hash"},
            {"regex": "secret", "whole_value": true}
        ]
    }"#;
    assert_eq!(redact_one(cfg, "ssn 123-45-6789 ok"), s("ssn *** ok"));
    assert_eq!(
        redact_one(cfg, "id cust-42 ok"),
        s(&format!("id {} ok", sha("pepper", "cust-42")))
    );
    assert_eq!(redact_one(cfg, "my secret plan"), s("***"));
    // A pattern can also name a detector, to give it its own action.
    let cfg = r#"{"salt":"p","detectors":[],"patterns":[{"detector":"email","action":"hash"}]}"#;
    assert_eq!(redact_one(cfg, "a@b.io"), s(&sha("p", "a@b.io")));
}

#[test]
fn hashing_is_salted_and_deterministic() {
    let cfg = r#"{"action":"hash","salt":"s1"}"#;
    let a = redact_one(cfg, "jane@example.com").unwrap();
    let b = redact_one(cfg, "jane@example.com").unwrap();
    assert_eq!(a, b);
    assert_eq!(a, Value::Str(sha("s1", "jane@example.com")));
    let other_salt = redact_one(r#"{"action":"hash","salt":"s2"}"#, "jane@example.com").unwrap();
    assert_ne!(a, other_salt);
    let other_value = redact_one(cfg, "john@example.com").unwrap();
    assert_ne!(a, other_value);
    // Only the matched part is hashed; the text around it stays.
    assert_eq!(
        redact_one(cfg, "to jane@example.com!"),
        s(&format!("to {}!", sha("s1", "jane@example.com")))
    );
}

#[test]
fn block_list_keys_with_globs_at_every_level() {
    let cfg = r#"{"keys":["*.password","http.request.header.*","token"],"detectors":[]}"#;
    let mut b = MemoryBatch::traces();
    b.resource()
        .attr("db.password", "hunter2")
        .attr("service.name", "api");
    b.scope().attr("token", "t");
    b.span("s")
        .attr("http.request.header.authorization", "Basic xyz")
        .attr("http.response.header.server", "nginx")
        .attr("password", "not matched by *.password")
        .attr("user.password", Value::Int(1234));
    b.event().attr("smtp.password", "x");
    b.link().attr("token", "y");
    let mut p = plugin(cfg);
    b.process(&mut p).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "db.password"), Some("***"));
    assert_eq!(b.attr_str(Level::Resource, 0, "service.name"), Some("api"));
    assert_eq!(b.attr_str(Level::Scope, 0, "token"), Some("***"));
    assert_eq!(
        b.attr_str(Level::Item, 0, "http.request.header.authorization"),
        Some("***")
    );
    assert_eq!(
        b.attr_str(Level::Item, 0, "http.response.header.server"),
        Some("nginx")
    );
    assert_eq!(
        b.attr_str(Level::Item, 0, "password"),
        Some("not matched by *.password")
    );
    assert_eq!(b.attr_str(Level::Item, 0, "user.password"), Some("***"));
    assert_eq!(b.attr_str(Level::Event, 0, "smtp.password"), Some("***"));
    assert_eq!(b.attr_str(Level::Link, 0, "token"), Some("***"));
    assert_eq!(p.redacted_count(), 6);
    // Running again changes nothing: values already equal to the mask are left alone.
    assert!(b.process(&mut p).unwrap().is_empty());
}

#[test]
fn key_actions_remove_and_hash() {
    let mut b = MemoryBatch::logs();
    b.log("x")
        .attr("card", "4111")
        .attr("user.id", Value::Int(42))
        .attr("keep", "k");
    let cfg = r#"{"keys":["card"],"key_action":"remove"}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr(Level::Item, 0, "card"), None);
    let cfg = r#"{"keys":["user.id"],"key_action":"hash","salt":"s"}"#;
    b.process(&mut plugin(cfg)).unwrap();
    // Non-string values hash their text form, so ints stay joinable too.
    assert_eq!(
        b.attr_str(Level::Item, 0, "user.id"),
        Some(sha("s", "42").as_str())
    );
    assert_eq!(b.attr_str(Level::Item, 0, "keep"), Some("k"));
}

#[test]
fn allow_list_masks_or_removes_everything_else() {
    let mut b = MemoryBatch::traces();
    b.resource()
        .attr("service.name", "api")
        .attr("host.name", "box-1");
    b.span("s")
        .attr("http.method", "GET")
        .attr("http.route", "/x")
        .attr("user.name", "jane");
    let cfg = r#"{"key_mode":"allow","keys":["service.name","http.*"],"detectors":[]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "service.name"), Some("api"));
    assert_eq!(b.attr_str(Level::Resource, 0, "host.name"), Some("***"));
    assert_eq!(b.attr_str(Level::Item, 0, "http.method"), Some("GET"));
    assert_eq!(b.attr_str(Level::Item, 0, "user.name"), Some("***"));

    let mut b = MemoryBatch::traces();
    b.span("s").attr("http.method", "GET").attr("user.name", "jane");
    let cfg = r#"{"key_mode":"allow","keys":["http.*"],"key_action":"remove","levels":["item"]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attrs(Level::Item, 0).len(), 1);
    assert_eq!(b.attr_str(Level::Item, 0, "http.method"), Some("GET"));
}

#[test]
fn allowed_keys_are_still_scanned() {
    let cfg = r#"{"key_mode":"allow","keys":["v"]}"#;
    assert_eq!(redact_one(cfg, "ping jane@example.com"), s("ping ***"));
}

#[test]
fn ignore_keys_skip_value_detection_only() {
    let mut b = MemoryBatch::traces();
    b.span("s")
        .attr("client.address", "10.0.0.1")
        .attr("peer", "10.0.0.2")
        .attr("db.password", "p");
    let cfg = r#"{"detectors":["ipv4"],"ignore_keys":["client.*","db.*"],"keys":["db.password"]}"#;
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.attr_str(Level::Item, 0, "client.address"), Some("10.0.0.1"));
    assert_eq!(b.attr_str(Level::Item, 0, "peer"), Some("***"));
    assert_eq!(b.attr_str(Level::Item, 0, "db.password"), Some("***"));
}

#[test]
fn levels_limit_where_attributes_are_scanned() {
    let mut b = MemoryBatch::traces();
    b.resource().attr("owner", "ops@example.com");
    b.span("s").attr("user", "jane@example.com");
    b.process(&mut plugin(r#"{"levels":["item"]}"#)).unwrap();
    assert_eq!(b.attr_str(Level::Resource, 0, "owner"), Some("ops@example.com"));
    assert_eq!(b.attr_str(Level::Item, 0, "user"), Some("***"));
}

#[test]
fn non_string_values_are_not_scanned() {
    let mut b = MemoryBatch::traces();
    b.span("s")
        .attr("n", Value::Int(4111111111111111))
        .attr("raw", Value::Bytes(b"jane@example.com".to_vec()))
        .attr("ok", Value::Bool(true));
    assert!(b.process(&mut plugin("{}")).unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Arrays and maps: OTLP/JSON text, redacted leaf by leaf.

fn st(v: &str) -> J {
    json!({ "stringValue": v })
}

fn int(i: i64) -> J {
    json!({ "intValue": i.to_string() })
}

fn arr(items: Vec<J>) -> J {
    json!({ "arrayValue": { "values": items } })
}

fn kv(entries: &[(&str, J)]) -> J {
    let values: Vec<J> = entries
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    json!({ "kvlistValue": { "values": values } })
}

/// What a redacted attribute holds now: arrays and maps parsed back from JSON.
#[derive(Debug)]
enum Got {
    Json(J),
    Other(Value),
}

fn got(v: Option<&Value>) -> Got {
    match v {
        Some(Value::Json(text)) => Got::Json(serde_json::from_str(text).unwrap()),
        Some(other) => Got::Other(other.clone()),
        None => panic!("attribute is gone"),
    }
}

/// One span with one array/map attribute `v`, redacted with `config`.
fn redact_json(config: &str, value: &J) -> Got {
    let mut b = MemoryBatch::traces();
    b.span("s").attr("v", Value::Json(value.to_string()));
    b.process(&mut plugin(config)).unwrap();
    got(b.attr(Level::Item, 0, "v"))
}

fn assert_json(g: Got, want: &J) {
    match g {
        Got::Json(j) => assert_eq!(&j, want),
        other => panic!("expected JSON {want}, got {other:?}"),
    }
}

/// Non-secret leaves of every type, to check that they survive untouched.
fn siblings() -> Vec<(&'static str, J)> {
    vec![
        ("plain", st("all fine")),
        ("n", int(4111111111111111)),
        ("big", json!({ "intValue": "-9223372036854775808" })),
        ("x", json!({ "doubleValue": 0.1 })),
        ("ok", json!({ "boolValue": true })),
        ("raw", json!({ "bytesValue": "amFuZUBleGFtcGxlLmNvbQ==" })), // "jane@example.com"
        ("empty", json!({})),
    ]
}

#[test]
fn json_values_are_redacted_leaf_by_leaf() {
    let value = |email: &str| {
        let mut entries = siblings();
        entries.push(("user", st(&format!("mail {email} now"))));
        entries.push((
            "list",
            arr(vec![st("a"), st(email), arr(vec![kv(&[("deep", st(email))])])]),
        ));
        kv(&entries)
    };
    let g = redact_json("{}", &value("jane@example.com"));
    // Only the matched parts change; every sibling keeps its value and type.
    assert_json(g, &value("***"));
    // A top-level array too.
    let g = redact_json("{}", &arr(vec![st("ok"), int(7), st("jane@example.com")]));
    assert_json(g, &arr(vec![st("ok"), int(7), st("***")]));
}

#[test]
fn json_leaves_are_scanned_decoded_after_escapes() {
    // In JSON text a newline is `\n`: scanned raw, the detectors would see "nBearer"
    // or "\teyJ…" glued to a letter and miss the secret.
    let value = |token: &str, jwt: &str, card: &str| {
        kv(&[
            ("note", st(&format!("line one\nBearer {token}"))),
            ("tabbed", st(&format!("k:\t{jwt}"))),
            ("list", arr(vec![st("plain"), st(&format!("x\n{card}"))])),
            ("mail", st("to:\njane@example.com")),
            ("n", int(7)),
        ])
    };
    let g = redact_json(
        r#"{"detectors":["bearer","jwt","credit_card","email"]}"#,
        &value("t0k3n", JWT, "4111 1111 1111 1111"),
    );
    let mut want = value("***", "***", "***");
    want["kvlistValue"]["values"][3]["value"] = st("to:\n***");
    assert_json(g, &want);
}

#[test]
fn json_whole_value_replaces_the_leaf_only() {
    let cfg = r#"{"whole_value":true}"#;
    let g = redact_json(cfg, &kv(&[("u", st("mail jane@example.com")), ("k", st("keep"))]));
    assert_json(g, &kv(&[("u", st("***")), ("k", st("keep"))]));
}

#[test]
fn json_leaves_hash_like_strings() {
    let cfg = r#"{"action":"hash","salt":"s1","detectors":["email"]}"#;
    let g = redact_json(cfg, &arr(vec![st("to jane@example.com!")]));
    assert_json(
        g,
        &arr(vec![st(&format!("to {}!", sha("s1", "jane@example.com")))]),
    );
}

#[test]
fn custom_patterns_see_decoded_strings_not_json_syntax() {
    // The pattern matches the decoded text (a real newline), and cannot touch
    // the JSON around the strings.
    let cfg = r#"{"detectors":[],"patterns":[{"regex":"secret\\n\\d+"},{"regex":"\"key\""}]}"#;
    let g = redact_json(cfg, &kv(&[("key", st("a secret\n123 b")), ("k", st("\"key\""))]));
    assert_json(g, &kv(&[("key", st("a *** b")), ("k", st("***"))]));
}

#[test]
fn clean_json_values_produce_no_edits() {
    let mut b = MemoryBatch::logs();
    // No trigger character at all (skipped without parsing), and triggers without a match.
    b.log(Value::Json(arr(vec![st("a"), st("b")]).to_string()))
        .attr("v", Value::Json(kv(&siblings()).to_string()));
    b.log(Value::Json(
        kv(&[("when", st("12:30:45 on 2024-01-02")), ("by", st("Bob @ home"))]).to_string(),
    ));
    let mut p = plugin("{}");
    assert!(b.process(&mut p).unwrap().is_empty());
    assert_eq!(p.redacted_count(), 0);
}

#[test]
fn json_that_is_not_otlp_is_masked_whole_on_a_match() {
    // weir always writes OTLP/JSON; anything else cannot be edited in place.
    let mut b = MemoryBatch::traces();
    b.span("s")
        .attr(
            "plain",
            Value::Json(r#"{"user":"line\njane@example.com"}"#.into()),
        )
        .attr("clean", Value::Json(r#"["a","b"]"#.into()));
    b.process(&mut plugin("{}")).unwrap();
    assert_eq!(b.attr_str(Level::Item, 0, "plain"), Some("***"));
    assert_eq!(
        b.attr(Level::Item, 0, "clean"),
        Some(&Value::Json(r#"["a","b"]"#.into()))
    );
}

#[test]
fn key_rules_apply_to_map_keys_inside_values() {
    let value = |secret: J, token: J| {
        let mut entries = siblings();
        entries.push(("db.password", secret));
        entries.push((
            "list",
            arr(vec![kv(&[
                ("http.request.header.authorization", token),
                ("ok", st("x")),
            ])]),
        ));
        kv(&entries)
    };
    let cfg = r#"{"keys":["*.password","http.request.header.*"],"detectors":[]}"#;
    let g = redact_json(cfg, &value(st("hunter2"), st("Basic eHl6")));
    assert_json(g, &value(st("***"), st("***")));
    // Non-string values are masked to a string too, as for attributes.
    let g = redact_json(cfg, &value(int(1234), arr(vec![st("a")])));
    assert_json(g, &value(st("***"), st("***")));
    // Already masked: nothing changes on a second pass.
    let mut b = MemoryBatch::traces();
    b.span("s")
        .attr("v", Value::Json(value(st("***"), st("***")).to_string()));
    assert!(b.process(&mut plugin(cfg)).unwrap().is_empty());
}

#[test]
fn key_rules_inside_values_remove_and_hash() {
    let cfg = r#"{"keys":["secret.*"],"key_action":"remove","detectors":[]}"#;
    let g = redact_json(
        cfg,
        &kv(&[
            ("secret.a", st("x")),
            ("keep", kv(&[("secret.b", int(1)), ("k", st("v"))])),
        ]),
    );
    assert_json(g, &kv(&[("keep", kv(&[("k", st("v"))]))]));

    // Hashes match what the same value hashes to as a top-level attribute.
    let cfg = r#"{"keys":["h.*"],"key_action":"hash","salt":"s","detectors":[]}"#;
    let g = redact_json(
        cfg,
        &kv(&[
            ("h.str", st("u-42")),
            ("h.int", int(42)),
            ("h.double", json!({ "doubleValue": 0.5 })),
            ("h.bool", json!({ "boolValue": false })),
            ("h.bytes", json!({ "bytesValue": "aGk=" })),
            ("k", st("u-42")),
        ]),
    );
    let mut b = MemoryBatch::traces();
    b.span("s")
        .attr("h.str", "u-42")
        .attr("h.int", Value::Int(42))
        .attr("h.double", Value::Double(0.5))
        .attr("h.bool", Value::Bool(false))
        .attr("h.bytes", Value::Bytes(b"hi".to_vec()));
    b.process(&mut plugin(cfg)).unwrap();
    let top = |k: &str| st(b.attr_str(Level::Item, 0, k).unwrap());
    assert_json(
        g,
        &kv(&[
            ("h.str", top("h.str")),
            ("h.int", top("h.int")),
            ("h.double", top("h.double")),
            ("h.bool", top("h.bool")),
            ("h.bytes", top("h.bytes")),
            ("k", st("u-42")),
        ]),
    );
    assert_eq!(top("h.str"), st(&sha("s", "u-42")));
    assert_eq!(top("h.int"), st(&sha("s", "42")));
}

#[test]
fn allow_list_applies_to_map_keys_inside_values() {
    let cfg = r#"{"key_mode":"allow","keys":["http.*","method"],"detectors":[]}"#;
    let g = redact_json(
        cfg,
        &kv(&[("method", st("GET")), ("user", st("jane")), ("n", int(3))]),
    );
    // "v" itself is not allowed, so the whole attribute is masked first.
    assert!(matches!(g, Got::Other(Value::Str(ref m)) if m == "***"), "{g:?}");
    let mut b = MemoryBatch::traces();
    b.span("s").attr(
        "http.request",
        Value::Json(kv(&[("method", st("GET")), ("user", st("jane")), ("n", int(3))]).to_string()),
    );
    b.process(&mut plugin(cfg)).unwrap();
    assert_json(
        got(b.attr(Level::Item, 0, "http.request")),
        &kv(&[("method", st("GET")), ("user", st("***")), ("n", st("***"))]),
    );
}

#[test]
fn ignore_keys_do_not_stop_key_rules_inside_values() {
    let cfg = r#"{"keys":["*.password"],"ignore_keys":["cfg"]}"#;
    let mut b = MemoryBatch::traces();
    b.span("s").attr(
        "cfg",
        Value::Json(kv(&[("db.password", st("p")), ("owner", st("ops@example.com"))]).to_string()),
    );
    b.process(&mut plugin(cfg)).unwrap();
    // The value rules skip the ignored attribute; the key rule still masks the password.
    assert_json(
        got(b.attr(Level::Item, 0, "cfg")),
        &kv(&[("db.password", st("***")), ("owner", st("ops@example.com"))]),
    );
}

#[test]
fn key_rules_apply_inside_map_log_bodies() {
    let mut b = MemoryBatch::logs();
    b.log(Value::Json(
        kv(&[("msg", st("login ok")), ("user.password", st("hunter2"))]).to_string(),
    ));
    b.log(Value::Json(kv(&[("user.password", st("x"))]).to_string()));
    let mut p = plugin(r#"{"keys":["*.password"],"detectors":[]}"#);
    b.process(&mut p).unwrap();
    assert_json(
        got(b.item_at(0).body.as_ref()),
        &kv(&[("msg", st("login ok")), ("user.password", st("***"))]),
    );
    assert_eq!(p.redacted_count(), 2);
    // log_bodies = false leaves bodies alone entirely.
    let mut b = MemoryBatch::logs();
    b.log(Value::Json(kv(&[("user.password", st("x"))]).to_string()));
    let cfg = r#"{"keys":["*.password"],"log_bodies":false}"#;
    assert!(b.process(&mut plugin(cfg)).unwrap().is_empty());
}

#[test]
fn span_names_are_redacted() {
    let mut b = MemoryBatch::traces();
    b.span("GET /users/jane@example.com");
    b.span("GET /health");
    let mut p = plugin("{}");
    let changes = b.process(&mut p).unwrap();
    assert_eq!(changes.edits.len(), 1);
    assert_eq!(b.item_at(0).name, "GET /users/***");
    assert_eq!(b.item_at(1).name, "GET /health");
    let mut b = MemoryBatch::traces();
    b.span("GET /users/jane@example.com");
    b.process(&mut plugin(r#"{"span_names":false}"#)).unwrap();
    assert_eq!(b.item_at(0).name, "GET /users/jane@example.com");
}

#[test]
fn status_messages_are_redacted() {
    let mut b = MemoryBatch::traces();
    b.span("s")
        .status(2)
        .status_message("no account for jane@example.com");
    b.span("t").status(2).status_message("timeout");
    b.process(&mut plugin("{}")).unwrap();
    assert_eq!(b.item_at(0).status_message, "no account for ***");
    assert_eq!(b.item_at(1).status_message, "timeout");
    let mut b = MemoryBatch::traces();
    b.span("s").status_message("jane@example.com");
    assert!(
        b.process(&mut plugin(r#"{"status_messages":false}"#))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn log_bodies_strings_and_json() {
    let mut b = MemoryBatch::logs();
    b.log("login by jane@example.com from 10.0.0.1");
    b.log(Value::Json(
        r#"{"kvlistValue":{"values":[{"key":"auth","value":{"stringValue":"Bearer t0k3n"}}]}}"#.into(),
    ));
    b.log(Value::Int(4111111111111111));
    b.log("nothing");
    let mut p = plugin(r#"{"detectors":["email","bearer","ipv4"]}"#);
    b.process(&mut p).unwrap();
    assert_eq!(b.item_at(0).body, s("login by *** from ***"));
    assert_eq!(
        b.item_at(1).body,
        Some(Value::Json(
            r#"{"kvlistValue":{"values":[{"key":"auth","value":{"stringValue":"Bearer ***"}}]}}"#.into()
        ))
    );
    assert_eq!(b.item_at(2).body, Some(Value::Int(4111111111111111)));
    assert_eq!(b.item_at(3).body, s("nothing"));
    assert_eq!(p.redacted_count(), 2);
    let mut b = MemoryBatch::logs();
    b.log("jane@example.com");
    b.process(&mut plugin(r#"{"log_bodies":false}"#)).unwrap();
    assert_eq!(b.item_at(0).body, s("jane@example.com"));
}

#[test]
fn log_event_names_are_redacted() {
    let mut b = MemoryBatch::logs();
    b.log("x").event_name("user.login jane@example.com");
    b.log("y").event_name("app.start");
    let mut p = plugin("{}");
    let changes = b.process(&mut p).unwrap();
    assert_eq!(changes.edits.len(), 1);
    assert_eq!(b.item_at(0).event_name, "user.login ***");
    assert_eq!(b.item_at(1).event_name, "app.start");
    let mut b = MemoryBatch::logs();
    b.log("x").event_name("jane@example.com");
    assert!(
        b.process(&mut plugin(r#"{"event_names":false}"#))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn metrics_attributes_are_redacted() {
    let mut b = MemoryBatch::metrics();
    b.resource().attr("owner", "ops@example.com");
    b.point("http.server.duration")
        .attr("user", "jane@example.com")
        .attr("route", "/x");
    let mut p = plugin("{}");
    let changes = b.process(&mut p).unwrap();
    assert_eq!(changes.edits.len(), 2);
    assert_eq!(b.attr_str(Level::Resource, 0, "owner"), Some("***"));
    assert_eq!(b.attr_str(Level::Item, 0, "user"), Some("***"));
    assert_eq!(b.item_at(0).name, "http.server.duration");
}

#[test]
fn many_items_one_pass() {
    let mut b = MemoryBatch::traces();
    for i in 0..500 {
        let v = if i % 5 == 0 {
            format!("user{i}@example.com")
        } else {
            format!("user{i}")
        };
        b.span("op").attr("user", v.as_str()).attr("n", Value::Int(i));
    }
    let mut p = plugin("{}");
    let changes = b.process(&mut p).unwrap();
    assert_eq!(changes.edits.len(), 100);
    assert_eq!(p.redacted_count(), 100);
    assert_eq!(b.attr_str(Level::Item, 5, "user"), Some("***"));
    assert_eq!(b.attr_str(Level::Item, 6, "user"), Some("user6"));
}

#[test]
fn bad_configs_are_rejected_with_the_key() {
    let e = init_err(r#"{"patterns":[{"name":"ssn","regex":"(\\d{3}"}]}"#);
    assert!(
        e.contains("patterns[0] (ssn).regex") && e.contains("invalid regular expression"),
        "{e}"
    );
    let e = init_err(r#"{"action":"hash"}"#);
    assert!(e.starts_with("salt:"), "{e}");
    let e = init_err(r#"{"keys":["x"],"key_action":"hash"}"#);
    assert!(e.starts_with("salt:"), "{e}");
    let e = init_err(r#"{"patterns":[{"regex":"x","action":"hash"}]}"#);
    assert!(e.starts_with("salt:"), "{e}");
    let e = init_err(r#"{"salt":""}"#);
    assert!(e.starts_with("salt:"), "{e}");
    let e = init_err(r#"{"key_mode":"allow"}"#);
    assert!(e.starts_with("keys:"), "{e}");
    let e = init_err(r#"{"key_action":"remove"}"#);
    assert!(e.starts_with("key_action:"), "{e}");
    let e = init_err(r#"{"patterns":[{"regex":"x","detector":"email"}]}"#);
    assert!(e.contains("patterns[0]") && e.contains("exactly one"), "{e}");
    let e = init_err(r#"{"patterns":[{}]}"#);
    assert!(e.contains("patterns[0]"), "{e}");
    let e = init_err(r#"{"detectors":["emial"]}"#);
    assert!(e.contains("emial"), "{e}");
    let e = init_err(r#"{"mask_with":"x"}"#);
    assert!(e.contains("mask_with"), "{e}");
    // Empty config is fine (and so is no config at all).
    assert!(Redact::init("").is_ok());
}

#[test]
fn plugin_can_move_between_threads() {
    // The host's native runner pools instances across worker threads.
    fn send<T: Send + 'static>() {}
    send::<Redact>();
}

#[test]
fn span_event_names_metric_descriptions_metadata_and_exemplars_are_covered() {
    use weir_plugin_sdk::{BatchAccess, Field};
    let mut p = plugin("{}");
    let mut traces = MemoryBatch::traces();
    traces.span("checkout");
    traces.event().name("mail sent to bob@example.com");
    traces.process(&mut p).expect("process");
    assert_eq!(
        traces.read_field_at(Level::Event, Field::Name).str(0),
        "mail sent to ***"
    );

    let mut metrics = MemoryBatch::metrics();
    metrics
        .metric("orders")
        .description("orders of alice@example.com")
        .attr("owner", "carol@example.com");
    metrics.point("orders");
    metrics.exemplar().attr("user.email", "eve@example.com");
    metrics.process(&mut p).expect("process");
    assert_eq!(
        metrics.read_field_at(Level::Metric, Field::Description).str(0),
        "orders of ***"
    );
    assert_eq!(metrics.attr(Level::Metric, 0, "owner"), s("***").as_ref());
    assert_eq!(metrics.attr(Level::Exemplar, 0, "user.email"), s("***").as_ref());
}
