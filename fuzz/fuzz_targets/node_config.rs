//! The node config: parsing never panics; what parses has a runtime; where
//! the plain-subset reading answers, the general TOML parser agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strict_groups::config::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(plain) = strict_groups::config::plain_table(text) {
        assert_eq!(toml::from_str::<toml::Table>(text).ok(), Some(plain), "{text:?}");
    }
    if let Ok(config) = NodeConfig::parse(text) {
        let _ = config.config.runtime.len();
    }
});
