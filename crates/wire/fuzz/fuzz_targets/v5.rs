//! NetFlow v5: any bytes give records or an error, never a panic.
#![no_main]
use flowdrill_model::Addr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = flowdrill_wire::netflow::v5::decode(data, Addr::UNSPECIFIED_V4, None, &mut out);
    assert!(out.len() <= flowdrill_wire::netflow::v5::MAX_RECORDS);
});
