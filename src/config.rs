//! The node's configuration, `/etc/strict-groups/config.toml`.
//!
//! ```toml
//! runtime = "runc"                 # the real runtime: a name on PATH or an absolute path
//! default_policy = "Strict"        # when a pod has no policy annotation
//! allow_merge_annotation = false   # may a pod relax Strict to Merge
//! ```
//! A missing file means these defaults. A file that does not parse, or that
//! holds a key this version does not know (a misspelt setting must not be
//! silently ignored in a security control), is an error.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::policy::Policy;

/// Where the node config is read from.
pub const DEFAULT_PATH: &str = "/etc/strict-groups/config.toml";
/// Environment variable that overrides [`DEFAULT_PATH`] (tests, unusual layouts).
pub const PATH_ENV: &str = "STRICT_GROUPS_CONFIG";

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub runtime: String,
    pub default_policy: Policy,
    pub allow_merge_annotation: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            runtime: "runc".to_string(),
            default_policy: Policy::Strict,
            allow_merge_annotation: false,
        }
    }
}

impl NodeConfig {
    /// Parses the text of a config file.
    pub fn parse(text: &str) -> std::result::Result<NodeConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Loads the node config from `$STRICT_GROUPS_CONFIG` or [`DEFAULT_PATH`].
    pub fn load() -> Result<NodeConfig> {
        let path = std::env::var_os(PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        Self::load_from(&path)
    }

    pub fn load_from(path: &Path) -> Result<NodeConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(NodeConfig::default()),
            Err(e) => {
                return Err(e).with_context(|| format!("reading node config {}", path.display()));
            }
        };
        let config = Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}", e.message().trim()))
            .with_context(|| format!("node config {}", path.display()))?;
        anyhow::ensure!(
            !config.runtime.is_empty(),
            "node config {}: runtime is empty",
            path.display()
        );
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_is_the_defaults() {
        let example = include_str!("../config/config.toml");
        assert_eq!(NodeConfig::parse(example).unwrap(), NodeConfig::default());
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(NodeConfig::parse("").unwrap(), NodeConfig::default());
        let c = NodeConfig::parse(
            "# comment\nruntime = \"/usr/bin/crun\"\ndefault_policy = \"Merge\"\nallow_merge_annotation = true\n",
        )
        .unwrap();
        assert_eq!(c.runtime, "/usr/bin/crun");
        assert_eq!(c.default_policy, Policy::Merge);
        assert!(c.allow_merge_annotation);
    }

    #[test]
    fn mistakes_are_errors() {
        for bad in [
            "runtime = ",
            "default_policy = \"strict\"",
            "allow_merge_annotation = \"yes\"",
            "allow-merge-annotation = true",
            "runtime = 5",
            "[runtime]",
        ] {
            assert!(NodeConfig::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn missing_file_is_defaults_and_empty_runtime_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            NodeConfig::load_from(&dir.path().join("none.toml")).unwrap(),
            NodeConfig::default()
        );
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "runtime = \"\"").unwrap();
        assert!(NodeConfig::load_from(&p).is_err());
        std::fs::write(&p, "default_policy = \"Sometimes\"").unwrap();
        let err = format!("{:#}", NodeConfig::load_from(&p).unwrap_err());
        assert!(err.contains("c.toml"), "{err}");
    }
}
