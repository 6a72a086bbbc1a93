//! The node config: parsing never panics; what parses has a runtime.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::config::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = NodeConfig::parse(text) {
        let _ = config.config.runtime.len();
    }
});
