//! The node's configuration, `/etc/strict-groups/config.toml`.
//!
//! ```toml
//! runtime = "runc"                 # the real runtime: a name on PATH or an absolute path
//! default_policy = "Strict"        # when a pod has no policy annotation
//! allow_merge_annotation = false   # may a pod relax Strict to Merge
//! mode = "enforce"                 # or "audit": decide and record, change nothing
//! decision_log = "/var/log/strict-groups/decisions.log"  # optional JSON-lines file
//! decision_log_max_bytes = 10485760  # rotated to <file>.1 beyond this size
//!
//! [runtimes]                       # more than one wrapped runtime on a node:
//! strict-groups-nvidia = "/usr/bin/nvidia-container-runtime"
//! ```
//! Each runtime handler runs the wrapper by a path of its own (a link to the
//! binary, named in the handler's `BinaryName`); a name listed under
//! `[runtimes]` runs that real runtime, any other name runs `runtime`.
//! A missing file means these defaults. A file that does not parse or holds
//! a bad value is an error for create and exec (fail closed). A key this
//! version does not know is a warning, not an error: a node config rolled out
//! before the binary that knows it must not stop a node. Commands the wrapper
//! does not act on reach the real runtime whatever the file holds
//! ([`passthrough_runtime`]): a broken node config never keeps a pod from
//! being stopped or cleaned up.

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
#[serde(default)]
pub struct NodeConfig {
    pub runtime: String,
    pub default_policy: Policy,
    pub allow_merge_annotation: bool,
    pub mode: Mode,
    /// A JSON-lines file that receives every decision, beside syslog.
    pub decision_log: Option<PathBuf>,
    /// Size beyond which `decision_log` is rotated to `<file>.1`.
    pub decision_log_max_bytes: u64,
    /// The real runtime of each name the wrapper may be run by (its
    /// argv\[0\]'s file name), beside `runtime`.
    pub runtimes: std::collections::BTreeMap<String, String>,
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
            runtimes: Default::default(),
        }
    }
}

/// The keys this version knows.
const KEYS: &[&str] = &[
    "runtime",
    "default_policy",
    "allow_merge_annotation",
    "mode",
    "decision_log",
    "decision_log_max_bytes",
    "runtimes",
];

/// A node config and what was wrong with it that did not stop it loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub config: NodeConfig,
    /// Unknown keys, each a sentence.
    pub warnings: Vec<String>,
}

impl NodeConfig {
    /// Parses the text of a config file: the config and a warning per
    /// unknown key (which is then ignored).
    pub fn parse(text: &str) -> std::result::Result<Loaded, toml::de::Error> {
        let mut table: toml::Table = match plain_table(text) {
            Some(table) => table,
            None => toml::from_str(text)?,
        };
        let unknown: Vec<String> = table
            .keys()
            .filter(|k| !KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in &unknown {
            table.remove(key);
        }
        let config = NodeConfig::deserialize(table)?;
        let warnings = unknown
            .into_iter()
            .map(|k| {
                format!(
                    "unknown key {k:?} ignored (known: {}); a newer strict-groups may know it",
                    KEYS.join(", ")
                )
            })
            .collect();
        Ok(Loaded { config, warnings })
    }

    /// Loads the node config from `$STRICT_GROUPS_CONFIG` or [`DEFAULT_PATH`].
    pub fn load() -> Result<Loaded> {
        Self::load_from(&Self::path())
    }

    /// Where the node config is read from: `$STRICT_GROUPS_CONFIG` or [`DEFAULT_PATH`].
    pub fn path() -> PathBuf {
        std::env::var_os(PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    pub fn load_from(path: &Path) -> Result<Loaded> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    config: NodeConfig::default(),
                    warnings: Vec::new(),
                });
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading node config {}", path.display()));
            }
        };
        Self::parse_checked(&text, path)
    }

    /// [`NodeConfig::parse`] and the checks a load makes, the file named
    /// `path` in messages.
    pub fn parse_checked(text: &str, path: &Path) -> Result<Loaded> {
        let mut loaded = Self::parse(text)
            .map_err(|e| anyhow::anyhow!("{}", e.message().trim()))
            .with_context(|| format!("node config {}", path.display()))?;
        let config = &loaded.config;
        anyhow::ensure!(
            !config.runtime.is_empty() && config.runtimes.values().all(|r| !r.is_empty()),
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
        for w in &mut loaded.warnings {
            *w = format!("node config {}: {w}", path.display());
        }
        Ok(loaded)
    }
}

impl NodeConfig {
    /// The real runtime for the wrapper run as `invoked_as` (its argv\[0\]'s
    /// file name): the one `[runtimes]` names for it, else `runtime`.
    pub fn runtime_for(&self, invoked_as: &str) -> &str {
        self.runtimes
            .get(invoked_as)
            .map_or(self.runtime.as_str(), String::as_str)
    }
}

/// The real runtime for a command the wrapper does not act on, whatever the
/// node config holds: its runtime for `invoked_as` when the file loads, else
/// its `runtime` line when one can be read, else the default runtime; with
/// the reason for a fallback.
pub fn passthrough_runtime(path: &Path, invoked_as: &str) -> (String, Option<String>) {
    let default = NodeConfig::default().runtime;
    match NodeConfig::load_from(path) {
        Ok(loaded) => (loaded.config.runtime_for(invoked_as).to_string(), None),
        Err(e) => {
            // A file with a bad value elsewhere, or a syntax error on
            // another line, may still name the runtime.
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let named = toml::from_str::<toml::Table>(&text)
                .ok()
                .and_then(|t| t.get("runtime")?.as_str().map(str::to_string))
                .or_else(|| runtime_line(&text))
                .filter(|r| !r.is_empty());
            let runtime = named.unwrap_or(default);
            let why = format!("{e:#}; passing the command to runtime {runtime:?}");
            (runtime, Some(why))
        }
    }
}

/// The node config read as the plain subset of TOML that node configs are
/// written in, without the general parser (whose code, run once in a
/// process this short, was most of the cost of reading the file): blank
/// lines, `#` comment lines, `key = "string"` without escapes, `key =
/// true|false`, `key = 123`, and one `[runtimes]` table of such lines.
/// Anything else, a duplicate key included, is None, and the general parser
/// reads the file (and reports what is wrong). Where it answers it answers
/// as the general parser does (checked by a test and the fuzz target).
pub fn plain_table(text: &str) -> Option<toml::Table> {
    const BLANK: [char; 2] = [' ', '\t'];
    let mut top = toml::Table::new();
    let mut runtimes: Option<toml::Table> = None;
    for line in text.split_inclusive('\n') {
        // A line ends with LF or CRLF; any other CR is a control character.
        let line = line
            .strip_suffix('\n')
            .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
        let line = line.trim_matches(BLANK);
        if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return None;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[runtimes]" {
            if runtimes.is_some() || top.contains_key("runtimes") {
                return None;
            }
            runtimes = Some(toml::Table::new());
            continue;
        }
        let (key, value) = line.split_once('=')?;
        let key = key.trim_end_matches(BLANK);
        let bare = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if key.is_empty() || !key.bytes().all(bare) {
            return None;
        }
        let value = plain_value(value.trim_start_matches(BLANK))?;
        if runtimes
            .as_mut()
            .unwrap_or(&mut top)
            .insert(key.to_string(), value)
            .is_some()
        {
            return None;
        }
    }
    if let Some(runtimes) = runtimes {
        top.insert("runtimes".into(), toml::Value::Table(runtimes));
    }
    Some(top)
}

/// A string without escapes, a boolean or a decimal integer; None otherwise.
fn plain_value(text: &str) -> Option<toml::Value> {
    if let Some(body) = text.strip_prefix('"') {
        let string = body.strip_suffix('"')?;
        return (!string.contains(['"', '\\'])).then(|| toml::Value::String(string.into()));
    }
    match text {
        "true" => Some(toml::Value::Boolean(true)),
        "false" => Some(toml::Value::Boolean(false)),
        _ if text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0')) =>
        {
            text.parse().ok().map(toml::Value::Integer)
        }
        _ => None,
    }
}

/// The value of a top-level line `runtime = "..."` of a file that is not
/// valid TOML as a whole (before any table header).
fn runtime_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            return None;
        }
        let Some(rest) = line.strip_prefix("runtime") else {
            continue;
        };
        let value = rest.trim_start().strip_prefix('=')?.trim();
        let parsed: toml::Table = toml::from_str(&format!("v = {value}")).ok()?;
        return parsed.get("v")?.as_str().map(str::to_string);
    }
    None
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NodeConfig {
        let loaded = NodeConfig::parse(text).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        loaded.config
    }

    /// Wherever the plain reading answers, the general parser gives the
    /// same table: lines made of pieces on both sides of the subset's edges.
    #[test]
    fn plain_subset_reads_as_the_general_parser() {
        let keys = [
            "runtime", "mode", "runtimes", "x-y_9", "\"q\"", "", "a.b", "é", "k k",
        ];
        let separators = [" = ", "=", "\t=\t", " =", "= "];
        let values = [
            "\"a\"",
            "\"\"",
            "\"a#b=c\"",
            "\"\\n\"",
            "\"\\\"\"",
            "true",
            "false",
            "0",
            "007",
            "-1",
            "+1",
            "1_0",
            "9223372036854775807",
            "9223372036854775808",
            "\"é\"",
            "\"\t\"",
            "'lit'",
            "[1]",
            "\"a\" # c",
            "\"a\"\"",
            "True",
            "1.5",
            "",
            "\"\u{1}\"",
            "{}",
        ];
        let other_lines = [
            "",
            "# comment",
            "#\u{1}",
            "[runtimes]",
            "[other]",
            "[ runtimes ]",
            "[runtimes] # c",
            "  # indented",
            "\u{feff}runtime = \"x\"",
            "=",
            "key",
            "\t",
        ];
        let ends = ["\n", "\r\n", "\r", ""];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut answered, mut declined) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..next(6) {
                if next(3) == 0 {
                    text.push_str(other_lines[next(other_lines.len())]);
                } else {
                    text.push_str(keys[next(keys.len())]);
                    text.push_str(separators[next(separators.len())]);
                    text.push_str(values[next(values.len())]);
                }
                text.push_str(ends[next(ends.len())]);
            }
            match plain_table(&text) {
                Some(plain) => {
                    answered += 1;
                    let general = toml::from_str::<toml::Table>(&text);
                    assert_eq!(general.as_ref().ok(), Some(&plain), "{text:?}: {general:?}");
                }
                None => declined += 1,
            }
        }
        // Both sides of the edge were exercised.
        assert!(answered > 2000 && declined > 2000, "{answered} {declined}");
        let shipped = include_str!("../config/config.toml");
        assert!(plain_table(shipped).is_some());
    }

    #[test]
    fn shipped_example_is_the_defaults() {
        let example = include_str!("../config/config.toml");
        assert_eq!(parse(example), NodeConfig::default());
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(parse(""), NodeConfig::default());
        let c = parse(
            "# comment\nruntime = \"/usr/bin/crun\"\ndefault_policy = \"Merge\"\nallow_merge_annotation = true\n",
        );
        assert_eq!(c.runtime, "/usr/bin/crun");
        assert_eq!(c.default_policy, Policy::Merge);
        assert!(c.allow_merge_annotation);
        let c = parse(
            "mode = \"audit\"\ndecision_log = \"/var/log/sg.log\"\ndecision_log_max_bytes = 1000\n",
        );
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
            "runtime = 5",
            "[runtime]",
            "mode = \"Audit\"",
            "mode = \"warn\"",
        ] {
            assert!(NodeConfig::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let loaded = NodeConfig::parse(
            "allow-merge-annotation = true\nfuture = { a = 1 }\nmode = \"audit\"\n",
        )
        .unwrap();
        assert_eq!(loaded.config.mode, Mode::Audit);
        assert!(!loaded.config.allow_merge_annotation);
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("\"allow-merge-annotation\""));
    }

    #[test]
    fn missing_file_is_defaults_and_empty_runtime_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            NodeConfig::load_from(&dir.path().join("none.toml"))
                .unwrap()
                .config,
            NodeConfig::default()
        );
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "runtime = \"\"").unwrap();
        assert!(NodeConfig::load_from(&p).is_err());
        std::fs::write(&p, "default_policy = \"Sometimes\"").unwrap();
        let err = format!("{:#}", NodeConfig::load_from(&p).unwrap_err());
        assert!(err.contains("c.toml"), "{err}");
    }

    #[test]
    fn passthrough_finds_a_runtime_in_any_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let cases = [
            ("runtime = \"/usr/bin/crun\"\n", "/usr/bin/crun", false),
            (
                "runtime = \"/usr/bin/crun\"\nmode = \"warn\"\n",
                "/usr/bin/crun",
                true,
            ),
            ("runtime = \"crun\"\nnewer = 1\n", "crun", false),
            ("this is not toml", "runc", true),
            (
                "runtime = \"/usr/bin/crun\" # crun\nmode = enforce\n",
                "/usr/bin/crun",
                true,
            ),
            ("[x]\nruntime = \"/usr/bin/crun\"\n[[[", "runc", true),
            ("runtime = \"\"", "runc", true),
            ("runtime = 7", "runc", true),
        ];
        for (text, runtime, fell_back) in cases {
            std::fs::write(&p, text).unwrap();
            let (got, why) = passthrough_runtime(&p, "strict-groups");
            assert_eq!(got, runtime, "{text:?}");
            assert_eq!(why.is_some(), fell_back, "{text:?}: {why:?}");
        }
        assert_eq!(
            passthrough_runtime(&dir.path().join("absent.toml"), "strict-groups"),
            ("runc".to_string(), None)
        );
        std::fs::write(
            &p,
            "runtime = \"runc\"\n[runtimes]\nsg-nvidia = \"nvidia-container-runtime\"\n",
        )
        .unwrap();
        assert_eq!(
            passthrough_runtime(&p, "sg-nvidia").0,
            "nvidia-container-runtime"
        );
    }

    #[test]
    fn a_runtime_per_name() {
        let c = parse(
            "runtime = \"runc\"\n[runtimes]\nstrict-groups-nvidia = \"/usr/bin/nvidia-container-runtime\"\n",
        );
        assert_eq!(c.runtime_for("strict-groups"), "runc");
        assert_eq!(c.runtime_for("sg"), "runc");
        assert_eq!(
            c.runtime_for("strict-groups-nvidia"),
            "/usr/bin/nvidia-container-runtime"
        );
        assert!(NodeConfig::parse("[runtimes]\nx = 1\n").is_err());
    }
}
