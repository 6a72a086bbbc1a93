//! The node's configuration, `/etc/strict-groups/config.toml`.
//!
//! ```toml
//! runtime = "runc"                 # the real runtime: a name on PATH or an absolute path
//! default_policy = "Strict"        # when a pod has no policy annotation
//! allow_merge_annotation = false   # may a pod relax Strict to Merge
//! mode = "enforce"                 # or "audit": decide and record, change nothing
//! decision_log = "/var/log/strict-groups/decisions.log"  # optional JSON-lines file
//! decision_log_max_bytes = 10485760  # rotated to <file>.1 beyond this size
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

/// What the wrapper does with a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Remove the groups (the default).
    Enforce,
    /// Record what would be removed; change nothing.
    Audit,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub runtime: String,
    pub default_policy: Policy,
    pub allow_merge_annotation: bool,
    pub mode: Mode,
    /// A JSON-lines file that receives every decision, beside syslog.
    pub decision_log: Option<PathBuf>,
    /// Size beyond which `decision_log` is rotated to `<file>.1`.
    pub decision_log_max_bytes: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            runtime: "runc".to_string(),
            default_policy: Policy::Strict,
            allow_merge_annotation: false,
            mode: Mode::Enforce,
            decision_log: None,
            decision_log_max_bytes: 10 << 20,
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
        Self::load_from(&Self::path())
    }

    /// Where the node config is read from: `$STRICT_GROUPS_CONFIG` or [`DEFAULT_PATH`].
    pub fn path() -> PathBuf {
        std::env::var_os(PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
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
        if let Some(log) = &config.decision_log {
            anyhow::ensure!(
                log.is_absolute(),
                "node config {}: decision_log must be an absolute path",
                path.display()
            );
        }
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
        let c = NodeConfig::parse(
            "mode = \"audit\"\ndecision_log = \"/var/log/sg.log\"\ndecision_log_max_bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Audit);
        assert_eq!(
            c.decision_log.as_deref(),
            Some(Path::new("/var/log/sg.log"))
        );
        assert_eq!(c.decision_log_max_bytes, 1000);
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
            "mode = \"Audit\"",
            "mode = \"warn\"",
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
