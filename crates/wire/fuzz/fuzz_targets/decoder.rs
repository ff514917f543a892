//! The whole `Decoder::decode`: several datagrams of any version from a few exporters
//! through one decoder, then `finish`; memory caps must hold throughout.
#![no_main]
use flowdrill_model::Addr;
use flowdrill_wire::{Decoder, DecoderConfig};
use libfuzzer_sys::fuzz_target;

#[path = "split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let cfg = DecoderConfig {
        max_templates: 32,
        max_pending_bytes: 4096,
        max_domains: 16,
        max_exporters: 4,
        ..Default::default()
    };
    let mut dec = Decoder::new(cfg);
    let mut out = Vec::new();
    for (i, d) in split::split(data).into_iter().enumerate() {
        let exporter = Addr::from_v4_u32(0xc000_0200 | (i as u32 % 3));
        dec.decode(exporter, i as u64, d, &mut out);
        assert!(dec.session().pending_bytes() <= 4096);
        assert!(dec.stats().templates_active <= 32);
    }
    dec.finish(&mut out);
});
