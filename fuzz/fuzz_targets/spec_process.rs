//! The exec process file: parsing never panics; a rewrite parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::spec;

fuzz_target!(|data: &[u8]| {
    let Ok(user) = spec::parse_process(data) else {
        return;
    };
    let kept: Vec<u32> = user.additional_gids.iter().copied().filter(|g| g % 2 == 0).collect();
    let out = spec::rewrite_additional_gids(data, &user, &kept);
    let again = spec::parse_process(&out).expect("a rewrite must parse");
    if user.has_gids_array() {
        assert_eq!(again.additional_gids, kept);
    }
});
