//! The OTLP protobuf wire walk every receiver runs on every request
//! (`weir_otlp::wire::count_items`). First byte: the signal; the rest: the
//! request. What it accepts must decode with prost, with the same item count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{assert_downstream_agrees, signal_of};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, request)) = data.split_first() else {
        return;
    };
    let signal = signal_of(sel);
    match weir_otlp::wire::count_items(signal, request) {
        Ok(n) => assert_downstream_agrees(signal, request, n),
        // The message is what a client sees: building it must not panic.
        Err(e) => drop(e.to_string()),
    }
});
