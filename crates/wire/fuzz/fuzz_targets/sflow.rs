//! sFlow v5: any bytes give records or an error, never a panic.
#![no_main]
use flowdrill_model::Addr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = flowdrill_wire::sflow::decode(data, Addr::UNSPECIFIED_V4, 0, None, &mut out);
});
