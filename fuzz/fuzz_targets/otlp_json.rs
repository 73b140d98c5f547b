//! OTLP/JSON transcoding at the edge (`weir_otlp::json::to_protobuf`). First
//! byte: the signal; the rest: the JSON body. Its output must be a request the
//! wire walk and prost both accept, with the item count it reported.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{assert_downstream_agrees, signal_of};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let signal = signal_of(sel);
    match weir_otlp::json::to_protobuf(signal, body) {
        Ok((bytes, n)) => {
            assert_eq!(weir_otlp::wire::count_items(signal, &bytes).ok(), Some(n));
            assert_downstream_agrees(signal, &bytes, n);
        }
        Err(e) => drop(e.to_string()),
    }
});
