//! Two HPACK header blocks on one connection (split at the first byte's
//! value): decoding never panics, and no list it hands out passes the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::hpack::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (a, b) = rest.split_at((split as usize).min(rest.len()));
    let mut decoder = Decoder::with_limit(256);
    for block in [a, b] {
        let mut list = 0;
        let _ = decoder.decode(block, 1024, |n, v| list += n.len() + v.len() + 32);
        assert!(list <= 1024);
    }
});
