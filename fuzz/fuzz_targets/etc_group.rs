//! An image's /etc/passwd and /etc/group (split at the first 0xff byte; the
//! first byte picks uid and caller): parsing never panics, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::groups::{self, Caller};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (passwd, group) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[..0]),
    };
    let caller = if first & 1 == 0 { Caller::Containerd } else { Caller::Other };
    let uid = u32::from(first >> 1);
    let image = groups::image_groups(passwd, group, uid, caller);
    // The same input gives the same answer (no hidden state).
    assert_eq!(image, groups::image_groups(passwd, group, uid, caller));
});
