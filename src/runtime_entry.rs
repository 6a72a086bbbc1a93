//! strict-groups' runtime entry in containerd's config, defined once: the
//! handler name, the keys, the config versions and where the entry sits in
//! each. `configure` writes it, `doctor` checks it, `install.sh` goes
//! through `configure`.

/// The default runtime handler name (RuntimeClass `handler`).
pub const HANDLER: &str = "strict-groups";
/// What `pod_annotations` must pass for the policy annotation to arrive.
pub const ANNOTATION_PATTERN: &str = "strict-groups.io/*";
/// The shim the entry uses: runc's, whose `BinaryName` option names us.
pub const RUNC_V2: &str = "io.containerd.runc.v2";
/// Where install.sh puts the binary.
pub const DEFAULT_BINARY: &str = "/usr/local/bin/strict-groups";
/// containerd's built-in default runtime, which exists only while the config
/// has no `runtimes` table of its own.
pub const BUILTIN_RUNTIME: &str = "runc";

/// The CRI plugin's table in a containerd config of `version` (the
/// top-level `version` key; None when absent): version 1 (containerd 1.x,
/// no key) uses the short name, version 2 (containerd 1.x) the full id,
/// version 3 (containerd 2.x) the runtime half of the split CRI plugin.
/// An empty file gets version 2.
pub fn cri_plugin(version: Option<i64>, empty: bool) -> Result<&'static str, String> {
    match version {
        None | Some(1) if !empty => Ok("cri"),
        None | Some(1) | Some(2) => Ok("io.containerd.grpc.v1.cri"),
        Some(3) => Ok("io.containerd.cri.v1.runtime"),
        Some(v) => Err(format!("unknown containerd config version {v}")),
    }
}

/// Names under which `disabled_plugins` turns the CRI plugin off.
pub fn cri_disabled_names(plugin: &str) -> &'static [&'static str] {
    match plugin {
        "io.containerd.cri.v1.runtime" => {
            &["io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri"]
        }
        _ => &["cri", "io.containerd.grpc.v1.cri"],
    }
}

/// Does a `pod_annotations` pattern pass annotation `key`? containerd
/// matches with Go's `path.Match`: `*` and `?` never match a `/`, so `"*"`
/// does not pass `strict-groups.io/supplemental-groups-policy`.
pub fn pattern_passes(pattern: &str, key: &str) -> bool {
    glob(pattern.as_bytes(), key.as_bytes())
}

/// Does one of `patterns` pass the policy annotation?
pub fn passes_policy<'a>(mut patterns: impl Iterator<Item = &'a str>) -> bool {
    patterns.any(|p| pattern_passes(p, crate::policy::POLICY_ANNOTATION))
}

fn glob(p: &[u8], n: &[u8]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => {
            for i in 0..=n.len() {
                if glob(&p[1..], &n[i..]) {
                    return true;
                }
                if i < n.len() && n[i] == b'/' {
                    break;
                }
            }
            false
        }
        Some(b'?') => n.first().is_some_and(|&c| c != b'/') && glob(&p[1..], &n[1..]),
        Some(b'\\') => p.len() > 1 && n.first() == Some(&p[1]) && glob(&p[2..], &n[1..]),
        Some(b'[') => {
            let Some(&c) = n.first() else {
                return false;
            };
            let mut i = 1;
            let negated = p.get(1) == Some(&b'^');
            if negated {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                let mut lo = p[i];
                if lo == b'\\' && i + 1 < p.len() {
                    i += 1;
                    lo = p[i];
                }
                let mut hi = lo;
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
                    hi = p[i + 2];
                    i += 2;
                }
                matched |= lo <= c && c <= hi;
                i += 1;
            }
            if i >= p.len() {
                return false; // unterminated class: a bad pattern matches nothing
            }
            matched != negated && glob(&p[i + 1..], &n[1..])
        }
        Some(&c) => n.first() == Some(&c) && glob(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_go_path_match() {
        let key = "strict-groups.io/supplemental-groups-policy";
        for yes in [
            "strict-groups.io/*",
            "*/*",
            key,
            "strict-groups.io/supplemental-groups-polic?",
            "*.io/*",
            "[r-t]trict-groups.io/*",
            "strict-groups.io/\\supplemental-*",
        ] {
            assert!(pattern_passes(yes, key), "{yes}");
        }
        for no in [
            "*",
            "strict-groups.io",
            "*/",
            "strict-groups.io*",
            "?",
            "[^s]*/*",
            "[s",
        ] {
            assert!(!pattern_passes(no, key), "{no}");
        }
        assert!(pattern_passes("*", "io.kubernetes.cri-o.ContainerType"));
        assert!(passes_policy(["x", "*/*"].into_iter()));
        assert!(!passes_policy(["*"].into_iter()));
    }

    #[test]
    fn plugin_by_version() {
        assert_eq!(cri_plugin(None, true).unwrap(), "io.containerd.grpc.v1.cri");
        assert_eq!(cri_plugin(None, false).unwrap(), "cri");
        assert_eq!(
            cri_plugin(Some(2), false).unwrap(),
            "io.containerd.grpc.v1.cri"
        );
        assert_eq!(
            cri_plugin(Some(3), false).unwrap(),
            "io.containerd.cri.v1.runtime"
        );
        assert!(cri_plugin(Some(4), false).is_err());
    }
}
