//! Any text through the ACL parser: no panic; errors point inside the text; a parsed list
//! prints back to rules with the same predicates.
#![no_main]
use flowdrill_filter::acl::RuleList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleList::parse(text) {
        Ok(list) => {
            let printed: Vec<String> = list.rules.iter().map(|r| r.to_string()).collect();
            let again = RuleList::parse(&printed.join("\n")).expect("printed rules parse");
            for (a, b) in list.rules.iter().zip(&again.rules) {
                assert_eq!(a.to_expr(), b.to_expr());
            }
        }
        Err(err) => {
            let p = err.position().expect("parse errors have a position");
            assert!(p.offset <= text.len() && text.is_char_boundary(p.offset));
            let _ = err.render(text);
        }
    }
});
