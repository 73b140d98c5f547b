//! What a plugin hands back to the host: a change list (attribute and field
//! edits with their values, drops, routes, a replacement request), checked by
//! the contract (`weir_plugin_contract::check_changes` against a `Shape`) and
//! applied by the host (`weir_batch::HostBatch::apply`, then `finish`) — the
//! path `weir-wasm` runs after every plugin call, without wasmtime.
//!
//! The input drives `arbitrary::Unstructured`: which batch (one of the
//! built-in requests in fuzz/data, or raw bytes), then the changes, with
//! entity indices mostly near the batch's real counts so the checks pass
//! often enough to reach `apply`. Whatever `apply` accepts must produce
//! batches that weir's own wire walk and prost accept, with the item counts
//! they claim.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_batch::HostBatch;
use weir_fuzz::{assert_downstream_agrees, signal_of};
use weir_pipeline::{Batch, Signal};
use weir_plugin_contract::{Changes, Edit, Field, Level, Shape, Value, check_changes};
use weir_plugin_sdk::{BatchAccess, Matcher};

const FIELDS: [Field; 19] = [
    Field::Name,
    Field::TraceId,
    Field::SpanId,
    Field::ParentSpanId,
    Field::Kind,
    Field::StatusCode,
    Field::StatusMessage,
    Field::StartTime,
    Field::EndTime,
    Field::TraceState,
    Field::Flags,
    Field::Body,
    Field::SeverityText,
    Field::SeverityNumber,
    Field::Time,
    Field::ObservedTime,
    Field::EventName,
    Field::Unit,
    Field::Description,
];

const KEYS: [&str; 5] = ["service.name", "user.email", "k", "", "n"];

/// The built-in requests per signal, transcoded once from fuzz/data.
fn builtin(signal: Signal) -> &'static [Bytes] {
    static ALL: OnceLock<[Vec<Bytes>; 3]> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let enc = |s: Signal, json: &str| {
            weir_otlp::json::to_protobuf(s, json.as_bytes())
                .expect("fuzz/data holds valid OTLP/JSON")
                .0
        };
        [
            vec![
                enc(Signal::Traces, include_str!("../data/traces.json")),
                enc(Signal::Traces, include_str!("../data/traces-min.json")),
            ],
            vec![enc(Signal::Logs, include_str!("../data/logs.json"))],
            vec![enc(Signal::Metrics, include_str!("../data/metrics.json"))],
        ]
    });
    match signal {
        Signal::Traces => &all[0],
        Signal::Logs => &all[1],
        Signal::Metrics => &all[2],
    }
}

fn request(u: &mut Unstructured, signal: Signal) -> Result<Bytes> {
    let choices = builtin(signal);
    let pick = u.choose_index(choices.len() + 1)?;
    Ok(match choices.get(pick) {
        Some(b) => b.clone(),
        None => Bytes::from(Vec::<u8>::arbitrary_take(u)?),
    })
}

trait TakeBytes: Sized {
    fn arbitrary_take(u: &mut Unstructured) -> Result<Self>;
}

impl TakeBytes for Vec<u8> {
    fn arbitrary_take(u: &mut Unstructured) -> Result<Self> {
        let n = u.int_in_range(0..=512usize)?;
        Ok(u.bytes(n.min(u.len()))?.to_vec())
    }
}

/// An index below `count` most of the time, just past it or anything else sometimes.
fn index(u: &mut Unstructured, count: u32) -> Result<u32> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => u.arbitrary()?,
        1 => count,
        _ => u.int_in_range(0..=count.saturating_sub(1))?,
    })
}

fn indices(u: &mut Unstructured, count: u32) -> Result<Vec<u32>> {
    let n = u.int_in_range(0..=6usize)?;
    (0..n).map(|_| index(u, count)).collect()
}

/// JSON nested `depth` deep: arrays or objects, around the decoders' limits.
fn nested_json(u: &mut Unstructured) -> Result<String> {
    let depth = u.int_in_range(1..=140usize)?;
    let object = u.arbitrary::<bool>()?;
    let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
    Ok(format!("{}1{}", open.repeat(depth), close.repeat(depth)))
}

fn value(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => Value::Str(u.arbitrary()?),
        1 => Value::Int(u.arbitrary()?),
        2 => Value::Int(i64::from(u.arbitrary::<i8>()?)),
        3 => Value::Double(u.arbitrary()?),
        4 => Value::Bool(u.arbitrary()?),
        5 => Value::Bytes(u.arbitrary()?),
        6 => Value::Json(nested_json(u)?),
        _ => Value::Json(u.arbitrary()?),
    })
}

fn key(u: &mut Unstructured) -> Result<String> {
    Ok(match u.choose_index(KEYS.len() + 1)? {
        i if i < KEYS.len() => KEYS[i].to_string(),
        _ => u.arbitrary()?,
    })
}

fn edit(u: &mut Unstructured, shape: &Shape) -> Result<Edit> {
    let level = *u.choose(&Level::ALL)?;
    let field = *u.choose(&FIELDS)?;
    let n = shape.count(level);
    Ok(match u.int_in_range(0..=3u8)? {
        0 => Edit::Attribute {
            level,
            entity: index(u, n)?,
            key: key(u)?,
            value: if u.arbitrary()? { Some(value(u)?) } else { None },
        },
        1 => Edit::AttributeMany {
            level,
            entities: indices(u, n)?,
            key: key(u)?,
            value: if u.arbitrary()? { Some(value(u)?) } else { None },
        },
        2 => Edit::Field {
            field,
            item: index(u, shape.items())?,
            value: value(u)?,
        },
        _ => Edit::EntityField {
            level,
            entity: index(u, n)?,
            field,
            value: value(u)?,
        },
    })
}

fn changes(u: &mut Unstructured, signal: Signal, shape: &Shape) -> Result<Changes> {
    // Any replacement, also ones weir's wire walk refuses (e.g. a 3-byte trace
    // id, which prost takes): the host must refuse those itself.
    let replace = match u.ratio(1, 8)? {
        true => Some(request(u, signal)?.to_vec()),
        false => None,
    };
    let edits = (0..u.int_in_range(0..=8usize)?)
        .map(|_| edit(u, shape))
        .collect::<Result<_>>()?;
    let drops = if u.ratio(1, 3)? {
        indices(u, shape.items())?
    } else {
        Vec::new()
    };
    let routes = (0..u.int_in_range(0..=3usize)?)
        .map(|_| Ok((key(u)?, indices(u, shape.items())?)))
        .collect::<Result<_>>()?;
    Ok(Changes {
        replace,
        edits,
        drops,
        routes,
    })
}

/// Every read a plugin can make, so that after `apply` the index and the tree
/// are checked to agree (a disagreement panics on an out-of-range index).
fn read_everything(b: &HostBatch) {
    let matcher = Matcher::AnyOf(vec!["x".into()]);
    for level in Level::ALL {
        let _ = b.owners(level);
        let _ = b.read_attributes(level);
        let _ = b.read_attribute(level, "service.name");
        let _ = b.read_attribute_inherited(level, "service.name");
        let _ = b.match_attribute(level, "k", &Matcher::Present, true);
        for of in Level::ALL {
            let _ = b.ancestors(level, of);
        }
        for field in FIELDS {
            let _ = b.read_field_at(level, field);
            let _ = b.match_field(level, field, &matcher);
        }
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let signal = signal_of(u.arbitrary()?);
    let payload = request(u, signal)?;
    // Receivers only let through what the wire walk accepts.
    if weir_otlp::wire::count_items(signal, &payload).is_err() {
        return Ok(());
    }
    let Ok(mut batch) = HostBatch::decode(&Batch::new(signal, payload, 0)) else {
        return Ok(());
    };
    let shape = batch.shape();
    for _round in 0..u.int_in_range(1..=3u8)? {
        let changes = changes(u, signal, &shape)?;
        // The contract's check alone, against an arbitrary shape too.
        let other = Shape {
            signal: shape.signal,
            counts: u.arbitrary()?,
        };
        let _ = check_changes(&other, &changes).map_err(|e| e.to_string());
        let items_after_replace = match &changes.replace {
            Some(r) => batch.shape_of_replacement(r).map(|s| s.items()).ok(),
            None => Some(batch.shape().items()),
        };
        let checked = match &changes.replace {
            Some(r) => batch
                .shape_of_replacement(r)
                .ok()
                .map(|s| check_changes(&s, &changes)),
            None => Some(check_changes(&batch.shape(), &changes)),
        };
        match batch.apply(changes) {
            Ok(applied) => {
                assert!(
                    matches!(checked, Some(Ok(()))),
                    "apply took changes the contract refuses"
                );
                let before = items_after_replace.expect("apply decoded the replacement");
                assert_eq!(batch.items(), before as usize - applied.dropped);
            }
            Err(e) => drop(e.to_string()),
        }
        read_everything(&batch);
        let _ = batch.to_otlp();
    }
    let items = batch.items();
    let mut total = 0;
    for (_route, out) in batch.finish() {
        assert!(out.items > 0, "an empty batch was handed on");
        match weir_otlp::wire::count_items(signal, &out.payload) {
            Ok(n) => assert_eq!(
                n, out.items,
                "a batch claims {} items, its request has {n}",
                out.items
            ),
            Err(e) => panic!("the host produced a request weir itself refuses: {e}"),
        }
        assert_downstream_agrees(signal, &out.payload, out.items);
        total += out.items;
    }
    assert_eq!(total, items);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
