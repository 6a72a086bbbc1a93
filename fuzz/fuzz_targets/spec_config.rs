//! config.json: parsing never panics; when it parses, a rewrite that keeps
//! any subset of A is valid JSON again, holds exactly that subset, and
//! leaves every byte outside the array as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::spec;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = spec::parse_config(data) else {
        return;
    };
    let a = &config.user.additional_gids;
    let kept: Vec<u32> = a.iter().copied().step_by(2).collect();
    let out = spec::rewrite_additional_gids(data, &config.user, &kept);
    let again = spec::parse_config(&out).expect("a rewrite must parse");
    if config.user.has_gids_array() {
        assert_eq!(again.user.additional_gids, kept);
    }
    assert_eq!(again.user.uid, config.user.uid);
    assert_eq!(again.user.gid, config.user.gid);
    assert_eq!(again.annotations, config.annotations);
    if kept == *a {
        assert_eq!(out, data, "nothing removed: same bytes");
    }
});
