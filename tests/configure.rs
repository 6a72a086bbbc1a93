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
        .filter(|(name, _)| name != "invalid.toml" && name != "cri-disabled.toml")
        .collect();
    files.sort();
    files
}

const PLUGINS: [&str; 3] = [
    "io.containerd.grpc.v1.cri",
    "cri",
    "io.containerd.cri.v1.runtime",
];

/// The runtimes table, parsed, whatever the CRI plugin's name.
fn runtimes(doc: &toml::Table) -> Option<&toml::Value> {
    let plugins = doc.get("plugins")?;
    // containerd 2's config has both the gRPC CRI plugin and the runtime one.
    let cri = PLUGINS
        .iter()
        .find_map(|p| plugins.get(*p).filter(|c| c.get("containerd").is_some()))?;
    cri.get("containerd")?.get("runtimes")
}

/// The entry, parsed, whatever the CRI plugin's name.
fn entry(doc: &toml::Table) -> Option<&toml::Value> {
    runtimes(doc)?.get("strict-groups")
}

/// The document without the strict-groups entry (and without the runc entry
/// written out for a config that had none), empty tables dropped, to compare
/// with the original, empty tables dropped.
fn without_entry(mut doc: toml::Table, original: &toml::Table) -> toml::Table {
    let had_runc = runtimes(original).is_some_and(|r| r.get("runc").is_some());
    for plugin in PLUGINS {
        let Some(runtimes) = doc
            .get_mut("plugins")
            .and_then(|p| p.get_mut(plugin))
            .and_then(|c| c.get_mut("containerd"))
            .and_then(|c| c.get_mut("runtimes"))
            .and_then(|r| r.as_table_mut())
        else {
            continue;
        };
        runtimes.remove("strict-groups");
        if !had_runc {
            runtimes.remove("runc");
        }
    }
    if original.is_empty() {
        doc.remove("version");
    }
    pruned(doc)
}

/// The table with every table that holds nothing dropped, recursively.
fn pruned(t: toml::Table) -> toml::Table {
    t.into_iter()
        .filter_map(|(k, v)| match v {
            toml::Value::Table(sub) => {
                let sub = pruned(sub);
                (!sub.is_empty()).then_some((k, toml::Value::Table(sub)))
            }
            v => Some((k, v)),
        })
        .collect()
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

fn backups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".strict-groups.bak"))
        .collect()
}

/// The CRI plugin's default runtime name (containerd's default: runc).
fn doc_default(doc: &toml::Table) -> String {
    PLUGINS
        .iter()
        .find_map(|p| doc.get("plugins")?.get(*p)?.get("containerd"))
        .and_then(|c| c.get("default_runtime_name")?.as_str())
        .unwrap_or("runc")
        .to_string()
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
        let backups_now = backups(dir.path());
        assert_eq!(backups_now.len(), 1, "{name}");
        assert_eq!(std::fs::read_to_string(&backups_now[0]).unwrap(), original);

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
                    without_entry(doc.clone(), &old),
                    pruned(old.clone()),
                    "{name}: other settings changed"
                );
            }
            // The runtime that serves the node's pods is there, and the
            // entry is a copy of it.
            let default = doc_default(&doc);
            let served = runtimes(&doc)
                .and_then(|r| r.get(&default))
                .unwrap_or_else(|| panic!("{name}: default runtime {default} has no entry\n{new}"));
            for (key, value) in served.as_table().unwrap() {
                match key.as_str() {
                    "pod_annotations" => {}
                    "options" => {
                        for (k, v) in value.as_table().unwrap() {
                            if k != "BinaryName" {
                                assert_eq!(e["options"].get(k), Some(v), "{name}: options.{k}");
                            }
                        }
                    }
                    _ => assert_eq!(e.get(key), Some(value), "{name}: {key}"),
                }
            }
        } else {
            assert!(new.starts_with(&original), "{name}");
            assert!(new.contains(BINARY), "{name}");
        }

        // Idempotent.
        let out = configure(&["containerd", "--config", p, "--binary", BINARY]);
        assert!(stdout(&out).contains("nothing to do"), "{name}: {out:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), new, "{name}");

        // --remove gives the original back, byte for byte (what an empty
        // file got stays valid).
        let out = configure(&["containerd", "--config", p, "--remove"]);
        assert!(out.status.success(), "{name}: {out:?}");
        let removed = std::fs::read_to_string(&path).unwrap();
        let had_entry = original.contains("runtimes.strict-groups]");
        if !original.trim().is_empty() && !had_entry {
            assert_eq!(removed, original, "{name}: --remove is the exact inverse");
        }
        // Two backups (configure, then remove), each the file as it was.
        assert_eq!(backups(dir.path()).len(), 2, "{name}");
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

#[test]
fn a_private_config_keeps_its_mode_and_owner_in_backups_and_rewrites() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    // An RKE2-style config with a registry password: 0600, owned by 1234.
    std::fs::write(
        &path,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example\".auth]\n  password = \"s3cret\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(1234), Some(1234)).unwrap();
    let p = path.to_str().unwrap();
    for args in [
        vec!["containerd", "--config", p, "--binary", BINARY],
        vec!["containerd", "--config", p, "--remove"],
        vec!["containerd", "--config", p, "--binary", BINARY],
    ] {
        let out = configure(&args);
        assert!(out.status.success(), "{out:?}");
    }
    // Three runs within a second or two: three distinct backups.
    let all = backups(dir.path());
    assert_eq!(all.len(), 3, "{all:?}");
    for file in all.iter().chain([&path]) {
        let meta = std::fs::metadata(file).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600, "{}", file.display());
        assert_eq!((meta.uid(), meta.gid()), (1234, 1234), "{}", file.display());
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn a_containerd_without_cri_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/cri-disabled.toml"),
    )
    .unwrap();
    std::fs::write(&path, &original).unwrap();
    let out = configure(&[
        "containerd",
        "--config",
        path.to_str().unwrap(),
        "--binary",
        BINARY,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("the CRI plugin is disabled"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    assert!(backups(dir.path()).is_empty());
}

#[test]
fn a_gpu_node_is_told_which_runtime_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/gpu-nvidia-default.toml"),
        &path,
    )
    .unwrap();
    let out = configure(&[
        "containerd",
        "--config",
        path.to_str().unwrap(),
        "--binary",
        BINARY,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("set runtime = \"/usr/bin/nvidia-container-runtime\""),
        "{out:?}"
    );
    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let e = entry(&doc).unwrap();
    assert_eq!(e["options"]["SystemdCgroup"].as_bool(), Some(true));
    assert_eq!(e["options"]["BinaryName"].as_str(), Some(BINARY));
    // nvidia stays the default; no runc entry is invented for it.
    assert!(runtimes(&doc).unwrap().get("runc").is_none());
}

/// Can the containerd under test load this config of the corpus? Templates
/// are rendered elsewhere; containerd 1.x reads versions 1 and 2, containerd
/// 2.x versions 2 and 3 (it migrates 2, and has dropped 1).
fn loadable_here(name: &str, text: &str) -> bool {
    let table = toml::from_str::<toml::Table>(text).unwrap_or_default();
    let version = match table.get("version").and_then(|v| v.as_integer()) {
        Some(v) => v,
        // An empty file: configure writes version 2, which both read.
        None if table.is_empty() => 2,
        // containerd reads a config without a version as version 1.
        None => 1,
    };
    let major = common::containerd::containerd_version().0;
    !name.ends_with(".tmpl")
        && if major >= 2 {
            version >= 2
        } else {
            version <= 2
        }
}

/// A containerd started on `config` (node paths moved under `dir`): does its
/// CRI plugin answer `Version`, and which runtime handlers does `Status` list?
fn cri_of_containerd(config: &str, dir: &Path) -> Result<Vec<String>, String> {
    use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
    let config = common::containerd::private_paths(config, dir);
    let file = dir.join("config.toml");
    std::fs::write(&file, config).unwrap();
    let socket = dir.join("containerd.sock");
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    let mut child = Command::new(common::containerd::containerd_program("containerd"))
        .arg("--config")
        .arg(&file)
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--address")
        .arg(&socket)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "containerd did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result: Result<Vec<String>, String> = rt.block_on(async {
        let channel = containerd_client::connect(&socket)
            .await
            .map_err(|e| e.to_string())?;
        let mut client = RuntimeServiceClient::new(channel);
        client
            .version(k8s_cri::v1::VersionRequest {
                version: "v1".into(),
            })
            .await
            .map_err(|e| format!("CRI Version: {}", e.message()))?;
        let status = client
            .status(k8s_cri::v1::StatusRequest { verbose: true })
            .await
            .map_err(|e| format!("CRI Status: {}", e.message()))?
            .into_inner();
        let config: serde_json::Value = serde_json::from_str(
            status
                .info
                .get("config")
                .ok_or_else(|| "no config in Status".to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let handlers = config["containerd"]["runtimes"]
            .as_object()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        Ok(handlers)
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    result.map_err(|e| {
        let log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
        let why: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("level=error") || l.contains("failed"))
            .collect();
        format!("{e}\n{}", why.join("\n"))
    })
}

/// What `configure` writes is loaded by a real containerd (1.6, Debian 12's)
/// with its CRI plugin up and both the node's default handler and
/// strict-groups' listed, for every plain config of the corpus this
/// containerd reads (version 3 is containerd 2.x's; templates are k3s's).
/// The old entry alone, without the runc entry, fails the CRI plugin on
/// Debian's own config: the check can fail.
#[test]
fn configured_corpus_loads_in_a_real_containerd() {
    common::require_root();
    println!("containerd {}", common::containerd::containerd_release());
    let loadable = loadable_here;
    let mut loaded = 0;
    for (name, original) in corpus().into_iter().filter(|(n, t)| loadable(n, t)) {
        let dir = tempfile::Builder::new()
            .prefix("sg-load")
            .tempdir()
            .unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &original).unwrap();
        let out = configure(&[
            "containerd",
            "--config",
            path.to_str().unwrap(),
            "--binary",
            BINARY,
            "--no-backup",
        ]);
        assert!(out.status.success(), "{name}: {out:?}");
        let configured = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Table = toml::from_str(&configured).unwrap();
        let handlers = cri_of_containerd(&configured, dir.path())
            .unwrap_or_else(|e| panic!("{name}: the CRI plugin did not load: {e}\n{configured}"));
        for h in [doc_default(&doc).as_str(), "strict-groups"] {
            assert!(
                handlers.iter().any(|x| x == h),
                "{name}: {h} not in {handlers:?}"
            );
        }
        println!("{name:<36} CRI up, handlers {handlers:?}");
        loaded += 1;
    }
    println!(
        "result: {loaded} configs of tests/configs configured and loaded, CRI plugin up with the default and strict-groups handlers"
    );

    // The entry without the runc one (what configure wrote before) on
    // Debian's packaged config: containerd's CRI plugin does not load.
    let dir = tempfile::Builder::new()
        .prefix("sg-load")
        .tempdir()
        .unwrap();
    let debian = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/debian-12-packaged.toml"),
    )
    .unwrap();
    let broken = format!(
        "{debian}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.strict-groups]\n  runtime_type = \"io.containerd.runc.v2\"\n"
    );
    match cri_of_containerd(&broken, dir.path()) {
        Err(err) => println!(
            "debian-12-packaged.toml, entry alone: CRI down ({})",
            err.lines().next().unwrap_or("")
        ),
        // containerd 2 keeps its built-in runc beside a runtimes table.
        Ok(handlers) => {
            assert!(
                common::containerd::containerd_version().0 >= 2,
                "containerd 1.x loaded a runtimes table without runc: {handlers:?}"
            );
            println!("debian-12-packaged.toml, entry alone: CRI up on containerd 2 ({handlers:?})");
        }
    }
}

/// A k3s/RKE2 template with `{{ template "base" . }}`: the block configure
/// appends renders, with Go's text/template as k3s renders it, to a config
/// whose strict-groups entry has runc's cgroup driver, and that a real
/// containerd loads.
#[test]
fn a_k3s_template_renders_with_runcs_cgroup_driver() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let render = dir.path().join("render");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&render)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k3s/render.go"))
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.path().join("gocache"))
        .env("GOFLAGS", "")
        .current_dir(dir.path())
        .output()
        .expect("go (golang-go)");
    assert!(out.status.success(), "{out:?}");
    let base = dir.path().join("base.toml");
    std::fs::write(
        &base,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = {{ .SystemdCgroup }}\n",
    )
    .unwrap();
    let template = dir.path().join("config.toml.tmpl");
    std::fs::write(&template, "{{ template \"base\" . }}\n").unwrap();
    let out = configure(&[
        "containerd",
        "--config",
        template.to_str().unwrap(),
        "--binary",
        BINARY,
    ]);
    assert!(out.status.success(), "{out:?}");
    for systemd in ["true", "false"] {
        let out = Command::new(&render)
            .arg(&template)
            .arg(systemd)
            .arg(&base)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let rendered = String::from_utf8(out.stdout).unwrap();
        let doc: toml::Table =
            toml::from_str(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        let runtimes = runtimes(&doc).unwrap();
        let want = Some(systemd == "true");
        assert_eq!(runtimes["runc"]["options"]["SystemdCgroup"].as_bool(), want);
        assert_eq!(
            runtimes["strict-groups"]["options"]["SystemdCgroup"].as_bool(),
            want,
            "{rendered}"
        );
        let loaded = tempfile::Builder::new()
            .prefix("sg-load")
            .tempdir()
            .unwrap();
        let handlers = cri_of_containerd(&rendered, loaded.path())
            .unwrap_or_else(|e| panic!("the CRI plugin did not load: {e}\n{rendered}"));
        assert!(
            handlers.iter().any(|h| h == "strict-groups"),
            "{handlers:?}"
        );
    }
}

/// On each plain config of the corpus, configured by `configure`: a pod of
/// KEP-3619's example runs on the strict-groups handler and gets Strict
/// groups, main process and exec.
#[test]
fn a_pod_runs_on_the_strict_groups_handler_of_each_configured_config() {
    use common::cri::{CriNode, PodSpec};
    common::require_root();
    println!("containerd {}", common::containerd::containerd_release());
    let image = common::oci_image::OciImage::new("localhost/strict-groups-test/kep:1")
        .with_files(&common::kep_image());
    let loadable = loadable_here;
    let mut ran = 0;
    for (name, original) in corpus().into_iter().filter(|(n, t)| loadable(n, t)) {
        let mut node = CriNode::start_from(|path| {
            std::fs::write(path, &original).unwrap();
            let out = configure(&[
                "containerd",
                "--config",
                path.to_str().unwrap(),
                "--binary",
                &wrapper_bin(),
                "--no-backup",
            ]);
            assert!(out.status.success(), "{name}: {out:?}");
            let configured = std::fs::read_to_string(path).unwrap();
            std::fs::write(
                path,
                common::containerd::runnable_config(&configured, path.parent().unwrap()),
            )
            .unwrap();
        });
        node.import(&image);
        let spec = PodSpec {
            name: "kep".into(),
            run_as_user: Some(1000),
            supplemental_groups: vec![60000],
            ..Default::default()
        };
        let pod = node
            .run_pod("strict-groups", &spec)
            .unwrap_or_else(|e| panic!("{name}: RunPodSandbox: {e}"));
        let id = node
            .start_container(&pod, "app", &image.name)
            .unwrap_or_else(|e| panic!("{name}: start: {e}"));
        let (main, exec) = node.groups(&id);
        assert_eq!(
            (&main[..], &exec[..]),
            (&[1000, 60000][..], &[1000, 60000][..]),
            "{name}"
        );
        node.remove_pod(&pod);
        println!("{name:<36} pod on strict-groups: main {main:?}, exec {exec:?}");
        ran += 1;
    }
    println!(
        "result: KEP-3619's pod on the strict-groups handler of {ran} configured configs: [1000, 60000] for main process and exec on each"
    );
}
