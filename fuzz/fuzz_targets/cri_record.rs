//! containerd's CRI metadata record: parsing D never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::containerd;

fuzz_target!(|data: &[u8]| {
    let _ = containerd::parse_declared(data);
});
