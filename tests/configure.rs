//! `strict-groups configure` on a corpus of real-world containerd configs
//! (containerd 1.6's own `config default`, comments and other runtimes, k3s
//! templates, empty, missing, invalid) and CRI-O drop-ins, through the
//! binary. The result is checked with a TOML parser and by diff: only the
//! runtime entry is added, everything else is kept byte for byte.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{stderr, stdout, wrapper_bin};

const BINARY: &str = "/usr/local/bin/strict-groups";

fn configure(args: &[&str]) -> Output {
    Command::new(wrapper_bin())
        .arg("configure")
        .args(args)
        .output()
        .unwrap()
}

fn corpus() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .filter(|(name, _)| name != "invalid.toml")
        .collect();
    let default = Command::new("containerd")
        .args(["config", "default"])
        .output()
        .expect("containerd config default");
    assert!(default.status.success());
    files.push((
        "containerd-config-default.toml".into(),
        String::from_utf8(default.stdout).unwrap(),
    ));
    files.sort();
    files
}

/// The entry, parsed, whatever the CRI plugin's name.
fn entry(doc: &toml::Table) -> Option<&toml::Value> {
    let plugins = doc.get("plugins")?;
    let cri = plugins
        .get("io.containerd.grpc.v1.cri")
        .or_else(|| plugins.get("cri"))?;
    cri.get("containerd")?.get("runtimes")?.get("strict-groups")
}

/// The document without the strict-groups entry (and without what an empty
/// file gets besides it), to compare with the original.
fn without_entry(mut doc: toml::Table, original_empty: bool) -> toml::Table {
    if let Some(runtimes) = doc
        .get_mut("plugins")
        .and_then(|p| p.get_mut("io.containerd.grpc.v1.cri"))
        .and_then(|c| c.get_mut("containerd"))
        .and_then(|c| c.get_mut("runtimes"))
        .and_then(|r| r.as_table_mut())
    {
        runtimes.remove("strict-groups");
    }
    if original_empty {
        doc.remove("version");
        doc.remove("plugins");
    }
    doc
}

/// Every line of `old` is in `new`, in order: the edit only inserted lines,
/// or changed lines that belong to the strict-groups entry.
fn only_insertions(old: &str, new: &str) -> Result<(), String> {
    let diff = similar::TextDiff::from_lines(old, new);
    let removed: Vec<String> = diff
        .iter_all_changes()
        .filter(|c| c.tag() == similar::ChangeTag::Delete)
        .map(|c| c.to_string())
        .collect();
    if removed.iter().all(|l| l.contains("pod_annotations")) {
        Ok(())
    } else {
        Err(format!("lines removed or changed: {removed:?}"))
    }
}

#[test]
fn corpus_gets_the_entry_and_keeps_everything_else() {
    for (name, original) in corpus() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&name);
        std::fs::write(&path, &original).unwrap();
        let p = path.to_str().unwrap();

        // --dry-run: a diff, nothing written.
        let out = configure(&["containerd", "--config", p, "--binary", BINARY, "--dry-run"]);
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(stdout(&out).contains("+"), "{name}: no diff printed");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original, "{name}");

        let out = configure(&["containerd", "--config", p, "--binary", BINARY]);
        assert!(out.status.success(), "{name}: {out:?}");
        let new = std::fs::read_to_string(&path).unwrap();
        only_insertions(&original, &new).unwrap_or_else(|e| panic!("{name}: {e}\n{new}"));

        // A backup of the original, byte for byte.
        let backups: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".strict-groups.bak"))
            .collect();
        assert_eq!(backups.len(), 1, "{name}");
        assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), original);

        if !new.contains("{{") {
            let doc: toml::Table =
                toml::from_str(&new).unwrap_or_else(|e| panic!("{name}: {e}\n{new}"));
            let e = entry(&doc).unwrap_or_else(|| panic!("{name}: no entry\n{new}"));
            assert_eq!(
                e["runtime_type"].as_str(),
                Some("io.containerd.runc.v2"),
                "{name}"
            );
            assert_eq!(e["options"]["BinaryName"].as_str(), Some(BINARY), "{name}");
            let annotations = e["pod_annotations"].as_array().unwrap();
            assert!(
                annotations
                    .iter()
                    .any(|a| a.as_str() == Some("strict-groups.io/*")),
                "{name}"
            );
            let old: toml::Table = toml::from_str(&original).unwrap();
            let had_entry = entry(&old).is_some();
            if !had_entry {
                assert_eq!(
                    without_entry(doc, original.trim().is_empty()),
                    old,
                    "{name}: other settings changed"
                );
            }
        } else {
            assert!(new.starts_with(&original), "{name}");
            assert!(new.contains(BINARY), "{name}");
        }

        // Idempotent.
        let out = configure(&["containerd", "--config", p, "--binary", BINARY]);
        assert!(stdout(&out).contains("nothing to do"), "{name}: {out:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), new, "{name}");

        // --remove gives the original back (what an empty file got stays valid).
        let out = configure(&["containerd", "--config", p, "--remove"]);
        assert!(out.status.success(), "{name}: {out:?}");
        let removed = std::fs::read_to_string(&path).unwrap();
        let had_entry = original.contains("runtimes.strict-groups]");
        if !original.trim().is_empty() && !had_entry {
            assert_eq!(removed, original, "{name}: --remove is the exact inverse");
        }
        println!("{name:<36} ok ({} -> {} bytes)", original.len(), new.len());
    }
}

#[test]
fn missing_file_is_created_and_invalid_toml_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/containerd/config.toml");
    let out = configure(&[
        "containerd",
        "--config",
        path.to_str().unwrap(),
        "--binary",
        BINARY,
    ]);
    assert!(out.status.success(), "{out:?}");
    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(entry(&doc).is_some());

    let invalid = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid.toml"),
    )
    .unwrap();
    let path = dir.path().join("invalid.toml");
    std::fs::write(&path, &invalid).unwrap();
    let out = configure(&[
        "containerd",
        "--config",
        path.to_str().unwrap(),
        "--binary",
        BINARY,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("strict-groups: configure: "),
        "{out:?}"
    );
    assert!(stderr(&out).contains("not valid TOML"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), invalid);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no backup, no temp file"
    );
}

#[test]
fn crio_dropin_is_written_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("crio.conf.d");
    let d = d.to_str().unwrap();
    let out = configure(&["crio", "--dropin-dir", d, "--binary", BINARY]);
    assert!(out.status.success(), "{out:?}");
    let file = dir.path().join("crio.conf.d/50-strict-groups.conf");
    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let e = &doc["crio"]["runtime"]["runtimes"]["strict-groups"];
    assert_eq!(e["runtime_path"].as_str(), Some(BINARY));
    assert_eq!(e["runtime_type"].as_str(), Some("oci"));
    let out = configure(&["crio", "--dropin-dir", d, "--binary", BINARY]);
    assert!(stdout(&out).contains("nothing to do"));
    let out = configure(&["crio", "--dropin-dir", d, "--remove"]);
    assert!(out.status.success());
    assert!(!file.exists());
}
