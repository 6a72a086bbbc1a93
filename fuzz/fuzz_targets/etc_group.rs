//! An image's /etc/passwd and /etc/group (split at the first 0xff byte; the
//! first byte picks uid, look-up rules and which files exist): parsing
//! never panics, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::groups::{self, Rules};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (passwd, group) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[..0]),
    };
    let rules = [Rules::Containerd, Rules::Crio, Rules::Both][usize::from(first & 3) % 3];
    let passwd = (first & 4 == 0).then_some(passwd);
    let group = (first & 8 == 0).then_some(group);
    let uid = u32::from(first >> 4);
    let image = groups::image_groups(passwd, group, uid, rules);
    // The same input gives the same answer (no hidden state).
    assert_eq!(image, groups::image_groups(passwd, group, uid, rules));
});
