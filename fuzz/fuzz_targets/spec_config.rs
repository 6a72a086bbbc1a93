//! config.json: parsing never panics; when it parses, a rewrite that keeps
//! a set of gids is valid JSON again, holds exactly the elements of A in
//! that set (in A's order, duplicates included), and leaves every other value
//! as it was.
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
        let expected: Vec<u32> = a.iter().copied().filter(|g| kept.contains(g)).collect();
        assert_eq!(again.user.additional_gids, expected);
    }
    assert_eq!(again.user.uid, config.user.uid);
    assert_eq!(again.user.gid, config.user.gid);
    assert_eq!(again.annotations, config.annotations);
    if a.iter().all(|g| kept.contains(g)) {
        assert_eq!(out, data, "nothing removed: same bytes");
    }
});
