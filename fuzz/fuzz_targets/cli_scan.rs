//! runc's argv, as NUL-separated arguments: the scanner never panics, and
//! what it finds is consistent with the argv.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use strict_groups::cli;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    let inv = cli::scan(&args);
    let _ = inv.action();
    let _ = inv.spec_path();
    if let Some(id) = &inv.container_id {
        // (lossy: runc refuses ids that are not plain ASCII anyway)
        assert!(args.iter().any(|a| a.to_string_lossy() == id.as_str()));
    }
});
