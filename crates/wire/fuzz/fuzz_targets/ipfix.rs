//! IPFIX with template state: the input is several datagrams (see `split`), decoded
//! in order through one session so templates defined early meet data later.
#![no_main]
use flowdrill_model::Addr;
use flowdrill_wire::DecodeStats;
use flowdrill_wire::netflow::session::{Limits, Session};
use libfuzzer_sys::fuzz_target;

#[path = "split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_templates: 32,
        max_pending_bytes: 4096,
        max_domains: 16,
    };
    let mut session = Session::new(limits, Default::default());
    let mut stats = DecodeStats::default();
    let mut out = Vec::new();
    for d in split::split(data) {
        let _ = flowdrill_wire::netflow::ipfix::decode(
            &mut session,
            Addr::UNSPECIFIED_V4,
            d,
            None,
            true,
            &mut out,
            &mut stats,
        );
        assert!(session.pending_bytes() <= 4096);
    }
    session.finish(&mut stats);
});
