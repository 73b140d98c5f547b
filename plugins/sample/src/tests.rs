#![allow(clippy::unwrap_used)]

use weir_plugin_sdk::testing::MemoryBatch;
use weir_plugin_sdk::{Plugin, Value};

use crate::{Sample, threshold, trace_randomness};

fn plugin(config: &str) -> Sample {
    Sample::init(config).unwrap()
}

fn init_err(config: &str) -> String {
    match Sample::init(config) {
        Ok(_) => panic!("config should be rejected: {config}"),
        Err(e) => e,
    }
}

/// SplitMix64: reproducible "random" trace ids without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn trace_id(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

fn random_ids(seed: u64, n: usize) -> Vec<u128> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.trace_id()).collect()
}

fn spans(ids: &[u128]) -> MemoryBatch {
    let mut b = MemoryBatch::traces();
    for &id in ids {
        b.span("op").trace(id);
    }
    b
}

fn kept(config: &str, ids: &[u128]) -> Vec<usize> {
    let mut b = spans(ids);
    b.process(&mut plugin(config)).unwrap();
    b.kept()
}

/// A trace id whose low 56 bits are `r`.
fn id_with_r(r: u64) -> u128 {
    (0xabcd_u128 << 112) | (0x77_u128 << 56) | u128::from(r)
}

#[test]
fn randomness_is_the_last_seven_bytes_big_endian() {
    let id = 0x0102_0304_0506_0708_0911_2233_4455_6677_u128.to_be_bytes();
    assert_eq!(trace_randomness(&id), Some(0x11_2233_4455_6677));
    assert_eq!(trace_randomness(&[0; 16]), None);
    assert_eq!(trace_randomness(&[]), None);
    assert_eq!(threshold(1.0), 0);
    assert_eq!(threshold(0.0), 1 << 56);
    assert_eq!(threshold(0.5), 1 << 55);
}

#[test]
fn threshold_boundary() {
    let ids = [
        id_with_r(1 << 55),
        id_with_r((1 << 55) - 1),
        id_with_r((1 << 56) - 1),
        id_with_r(0),
    ];
    assert_eq!(kept(r#"{"rate":0.5}"#, &ids), vec![0, 2]);
    assert_eq!(kept(r#"{"rate":1}"#, &ids), vec![0, 1, 2, 3]);
    assert_eq!(kept(r#"{"rate":0}"#, &ids), Vec::<usize>::new());
    // The highest randomness survives any positive rate.
    assert_eq!(kept(r#"{"rate":0.000001}"#, &ids), vec![2]);
}

#[test]
fn approximate_rate_over_ten_thousand_traces() {
    let ids = random_ids(7, 10_000);
    for (rate, lo, hi) in [(0.25, 2_300, 2_700), (0.1, 880, 1_120), (0.9, 8_850, 9_150)] {
        let n = kept(&format!(r#"{{"rate":{rate}}}"#), &ids).len();
        assert!((lo..=hi).contains(&n), "rate {rate}: kept {n}");
    }
}

#[test]
fn decisions_are_deterministic_and_per_trace() {
    let ids = random_ids(11, 1_000);
    let a = kept(r#"{"rate":0.3}"#, &ids);
    let b = kept(r#"{"rate":0.3}"#, &ids);
    assert_eq!(a, b);
    // The same traces in another order, split over batches, on another instance.
    let mut rev: Vec<u128> = ids.clone();
    rev.reverse();
    let kept_rev: Vec<u128> = kept(r#"{"rate":0.3}"#, &rev).iter().map(|&i| rev[i]).collect();
    let mut kept_a: Vec<u128> = a.iter().map(|&i| ids[i]).collect();
    let mut kept_rev_sorted = kept_rev.clone();
    kept_a.sort_unstable();
    kept_rev_sorted.sort_unstable();
    assert_eq!(kept_a, kept_rev_sorted);
    // Every span of a trace shares its fate.
    let mut b = MemoryBatch::traces();
    for &id in &ids[..200] {
        b.span("a").trace(id);
        b.span("b").trace(id);
    }
    b.process(&mut plugin(r#"{"rate":0.5}"#)).unwrap();
    let items = b.items();
    assert!(items.chunks(2).all(|pair| pair[0].dropped == pair[1].dropped));
    assert!(items.iter().any(|i| i.dropped) && items.iter().any(|i| !i.dropped));
}

#[test]
fn lower_rates_keep_a_subset() {
    let ids = random_ids(3, 2_000);
    let low = kept(r#"{"rate":0.1}"#, &ids);
    let high = kept(r#"{"rate":0.5}"#, &ids);
    assert!(low.iter().all(|i| high.contains(i)));
    assert!(low.len() < high.len());
}

#[test]
fn full_rate_reads_nothing_and_changes_nothing() {
    let mut b = spans(&random_ids(1, 50));
    assert!(b.process(&mut plugin("{}")).unwrap().is_empty());
}

#[test]
fn keep_errors_keeps_the_error_trace() {
    let ids = random_ids(5, 4);
    let mut b = MemoryBatch::traces();
    b.span("ok").trace(ids[0]);
    b.span("boom").trace(ids[0]).status(2);
    b.span("ok-child").trace(ids[0]).status(1);
    b.span("other").trace(ids[1]);
    b.span("lonely-error").trace(ids[2]).status(2);
    b.span("other2").trace(ids[3]);
    b.process(&mut plugin(r#"{"rate":0,"keep_errors":true}"#))
        .unwrap();
    assert_eq!(b.kept(), vec![0, 1, 2, 4]);
    // Without keep_errors, rate 0 drops everything.
    let mut b2 = MemoryBatch::traces();
    b2.span("boom").trace(ids[0]).status(2);
    b2.process(&mut plugin(r#"{"rate":0}"#)).unwrap();
    assert!(b2.kept().is_empty());
}

#[test]
fn rules_match_in_order_first_wins() {
    let cfg = r#"{
        "rate": 0,
        "rules": [
            {"service": "checkout", "rate": 1},
            {"kind": "server", "rate": 1},
            {"name": "GET /health*", "rate": 0},
            {"kind": ["client", "producer"], "name": "*", "rate": 1}
        ]
    }"#;
    let ids = random_ids(9, 8);
    let mut b = MemoryBatch::traces();
    b.resource().attr("service.name", "checkout");
    b.span("GET /health").trace(ids[0]).kind(2); // rule 0 (service) wins over rule 2
    b.resource().attr("service.name", "cart");
    b.span("GET /health").trace(ids[1]).kind(2); // rule 1 (server) wins over rule 2
    b.span("GET /healthz").trace(ids[2]).kind(3); // rule 2 wins over rule 3
    b.span("send").trace(ids[3]).kind(4); // rule 3
    b.span("work").trace(ids[4]).kind(1); // no rule: default 0
    b.resource();
    b.span("call").trace(ids[5]).kind(3); // no service.name: rule 3
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.kept(), vec![0, 1, 3, 5]);
}

#[test]
fn service_rules_use_globs_and_resource_attributes() {
    let cfg = r#"{"rate":1,"rules":[{"service":"batch-*","rate":0}]}"#;
    let ids = random_ids(2, 3);
    let mut b = MemoryBatch::traces();
    b.resource().attr("service.name", "batch-nightly");
    b.span("a").trace(ids[0]);
    b.resource().attr("service.name", "api");
    b.span("b").trace(ids[1]);
    b.resource().attr("service.name", Value::Int(3));
    b.span("c").trace(ids[2]);
    b.process(&mut plugin(cfg)).unwrap();
    assert_eq!(b.kept(), vec![1, 2]);
}

#[test]
fn explicit_rv_in_tracestate_wins() {
    // Trace id randomness is 0 (dropped at 0.5), but rv says the maximum.
    let mut b = MemoryBatch::traces();
    b.span("a")
        .trace(id_with_r(0))
        .trace_state("vendor=x,ot=th:8;rv:ffffffffffffff");
    b.span("b")
        .trace(id_with_r(0))
        .trace_state("ot=rv:00000000000000");
    b.span("c")
        .trace(id_with_r((1 << 56) - 1))
        .trace_state("ot=rv:short");
    b.process(&mut plugin(r#"{"rate":0.5}"#)).unwrap();
    assert_eq!(b.kept(), vec![0, 2]);
}

#[test]
fn spans_without_trace_ids_are_kept_unless_rate_is_zero() {
    let mut b = MemoryBatch::traces();
    b.span("no-id");
    b.span("zero").trace(0);
    b.process(&mut plugin(r#"{"rate":0.5}"#)).unwrap();
    assert_eq!(b.kept(), vec![0, 1]);
    b.process(&mut plugin(r#"{"rate":0}"#)).unwrap();
    assert!(b.kept().is_empty());
}

#[test]
fn logs_follow_their_trace() {
    let ids = random_ids(21, 500);
    let mut traces = spans(&ids);
    traces
        .process(&mut plugin(r#"{"rate":0.3,"logs":{"rate":0.3}}"#))
        .unwrap();
    let mut logs = MemoryBatch::logs();
    for &id in &ids {
        logs.log("msg").trace(id);
    }
    logs.process(&mut plugin(r#"{"rate":0.3,"logs":{"rate":0.3}}"#))
        .unwrap();
    assert_eq!(traces.kept(), logs.kept());
}

#[test]
fn logs_without_trace_ids_sample_by_body() {
    let mut logs = MemoryBatch::logs();
    for i in 0..2_000 {
        logs.log(format!("event {}", i % 1_000).as_str());
    }
    logs.log(Value::Int(5));
    logs.item(); // no body, no trace id: kept
    logs.process(&mut plugin(r#"{"logs":{"rate":0.5}}"#)).unwrap();
    let items = logs.items();
    // Equal bodies, equal decisions.
    assert!((0..1_000).all(|i| items[i].dropped == items[i + 1_000].dropped));
    let kept = (0..1_000).filter(|&i| !items[i].dropped).count();
    assert!((400..=600).contains(&kept), "kept {kept}");
    assert!(!items[2_001].dropped);
}

#[test]
fn logs_keep_severity_at_least() {
    let ids = random_ids(4, 300);
    for cfg in [
        r#"{"logs":{"rate":0,"keep_severity_at_least":17}}"#,
        r#"{"logs":{"rate":0,"keep_severity_at_least":"error"}}"#,
    ] {
        let mut logs = MemoryBatch::logs();
        for (i, &id) in ids.iter().enumerate() {
            let sev = [9, 13, 17, 21][i % 4];
            logs.log("m").trace(id).severity(sev, "");
        }
        logs.process(&mut plugin(cfg)).unwrap();
        let items = logs.items();
        assert!(items.iter().all(|l| l.dropped == (l.severity_number < 17)));
    }
}

#[test]
fn logs_default_to_keeping_everything() {
    let mut logs = MemoryBatch::logs();
    for &id in &random_ids(8, 100) {
        logs.log("m").trace(id);
    }
    // The trace rate does not apply to logs.
    assert!(logs.process(&mut plugin(r#"{"rate":0}"#)).unwrap().is_empty());
}

#[test]
fn metrics_pass_through() {
    let mut m = MemoryBatch::metrics();
    m.point("cpu").trace(5);
    assert!(
        m.process(&mut plugin(r#"{"rate":0,"logs":{"rate":0}}"#))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_configs_are_rejected_with_the_key() {
    let e = init_err(r#"{"rate":1.5}"#);
    assert!(e.starts_with("rate: 1.5 is outside 0..=1"), "{e}");
    let e = init_err(r#"{"rate":-0.1}"#);
    assert!(e.starts_with("rate:"), "{e}");
    let e = init_err(r#"{"rules":[{"kind":"server","rate":2}]}"#);
    assert!(e.starts_with("rules[0].rate:"), "{e}");
    let e = init_err(r#"{"logs":{"rate":7}}"#);
    assert!(e.starts_with("logs.rate:"), "{e}");
    let e = init_err(r#"{"rules":[{"kind":"srv","rate":1}]}"#);
    assert!(e.starts_with("rules[0].kind:") && e.contains("server"), "{e}");
    let e = init_err(r#"{"rules":[{"rate":1}]}"#);
    assert!(e.starts_with("rules[0]:"), "{e}");
    let e = init_err(r#"{"logs":{"keep_severity_at_least":30}}"#);
    assert!(e.starts_with("logs.keep_severity_at_least: 30"), "{e}");
    let e = init_err(r#"{"logs":{"keep_severity_at_least":"loud"}}"#);
    assert!(e.contains("\"loud\""), "{e}");
    let e = init_err(r#"{"ratio":0.5}"#);
    assert!(e.contains("ratio"), "{e}");
    let e = init_err(r#"{"rules":[{"kind":"server"}]}"#);
    assert!(e.contains("rate"), "{e}");
}

#[test]
fn plugin_can_move_between_threads() {
    // The host's native runner pools instances across worker threads.
    fn send<T: Send + 'static>() {}
    send::<Sample>();
}
