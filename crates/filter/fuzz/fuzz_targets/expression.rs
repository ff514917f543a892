//! Any text through the expression parser: no panic; errors point inside the text; a parsed
//! predicate prints to text that reads back to itself and evaluates the same row- and
//! column-wise.
#![no_main]
use flowdrill_model::{FlowRecord, RecordColumns};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match flowdrill_filter::parse(text) {
        Ok(e) => {
            let again = flowdrill_filter::parse(&e.to_string()).expect("canonical form parses");
            assert_eq!(again, e);
            let recs = [FlowRecord::default(), FlowRecord { proto: 6, dst_port: 443, ..Default::default() }];
            let cols = RecordColumns::from_records(&recs);
            let sel = e.select(&cols).expect("all columns");
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(sel.get(i), e.matches(r));
            }
        }
        Err(err) => {
            let p = err.position().expect("parse errors have a position");
            assert!(p.offset <= text.len() && text.is_char_boundary(p.offset));
            let _ = err.render(text);
            let _ = err.to_json();
        }
    }
});
