//! `install.sh` on scratch roots: it installs, configures the runtime (the
//! result passes `doctor`), is safe to run twice, and `--uninstall` leaves
//! the root byte-identical to before.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{stderr, stdout, wrapper_bin};

fn install_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh")
}

fn install(root: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .arg(install_sh())
        .arg("--root")
        .arg(root)
        .arg("--binary")
        .arg(wrapper_bin())
        .args(args)
        .output()
        .unwrap()
}

/// Every path under `root` with its type, mode, owner and content (or link
/// target), and for files their modification time.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = format!("{:o} {}:{}", m.mode(), m.uid(), m.gid());
            let value = if m.file_type().is_symlink() {
                format!("link {mode} {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                walk(root, &p, out);
                format!("dir {mode}")
            } else {
                let data = std::fs::read(&p).unwrap();
                format!(
                    "file {mode} {} {:x} mtime {}.{}",
                    data.len(),
                    crc(&data),
                    m.mtime(),
                    m.mtime_nsec()
                )
            };
            out.insert(rel, value);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn crc(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// A node: runc installed, and the runtime's config as given.
fn node(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let runc = root.path().join("usr/bin/runc");
    std::fs::create_dir_all(runc.parent().unwrap()).unwrap();
    std::fs::write(&runc, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&runc, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (path, text) in files {
        let p = root.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        // A private config of another owner, a year old: --uninstall must
        // give back all of it.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&p, Some(1234), Some(1234)).unwrap();
        let year_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(365 * 86400);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(year_ago)
            .unwrap();
    }
    root
}

fn doctor(root: &Path) -> Output {
    Command::new(wrapper_bin())
        .args(["doctor", "--root"])
        .arg(root)
        .args([
            "--config",
            "/etc/strict-groups/config.toml",
            "--containerd-version",
            "1.6.20",
            "--crio-version",
            "",
            "--kubernetes-version",
            "1.29.0",
        ])
        .output()
        .unwrap()
}

fn corpus(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/configs")
            .join(name),
    )
    .unwrap()
}

fn round_trip(name: &str, files: &[(&str, &str)], configured: &str) {
    let root = node(files);
    // runc is found by its absolute path in the scratch root.
    let before = snapshot(root.path());
    let out = install(root.path(), &[]);
    assert!(
        out.status.success(),
        "{name}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let installed = root.path().join("usr/local/bin/strict-groups");
    assert!(installed.exists(), "{name}");
    let text = std::fs::read_to_string(root.path().join(configured)).unwrap();
    assert!(
        text.contains("BinaryName = \"/usr/local/bin/strict-groups\"")
            || text.contains("runtime_path = \"/usr/local/bin/strict-groups\""),
        "{name}: {text}"
    );
    let out = doctor(root.path());
    assert!(
        out.status.success(),
        "{name}: doctor after install:\n{}",
        stdout(&out)
    );
    again_then_uninstall(name, root.path(), &[], &before);
    println!("{name:<28} install, install again, uninstall: ok");
}

/// Adds an operator's line to `config` after the install, then uninstalls:
/// the line it added.
fn uninstall_after_an_operator_edit(root: &Path, config: &Path) -> &'static str {
    const EDIT: &str = "\n# added later by the operator\n";
    let edited = std::fs::read_to_string(config).unwrap() + EDIT;
    std::fs::write(config, edited).unwrap();
    let out = install(root, &["--uninstall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    EDIT
}

/// Installs again with `args` (nothing may change), then uninstalls (the
/// root must be `before` again).
fn again_then_uninstall(name: &str, root: &Path, args: &[&str], before: &BTreeMap<String, String>) {
    let after_first = snapshot(root);
    let out = install(root, args);
    assert!(out.status.success(), "{name}: second run: {}", stderr(&out));
    assert_eq!(
        snapshot(root),
        after_first,
        "{name}: a second install changed something"
    );
    let out = install(root, &["--uninstall"]);
    assert!(
        out.status.success(),
        "{name}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        snapshot(root),
        *before,
        "{name}: --uninstall must restore the root exactly"
    );
}

#[test]
fn install_twice_then_uninstall_restores_the_root_exactly() {
    let comments = corpus("comments-and-runtimes.toml");
    round_trip(
        "containerd with comments",
        &[("etc/containerd/config.toml", &comments)],
        "etc/containerd/config.toml",
    );
    round_trip(
        "containerd without config",
        &[],
        "etc/containerd/config.toml",
    );
    let k3s = corpus("k3s-config.toml.tmpl");
    round_trip(
        "k3s with a template",
        &[(
            "var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
            &k3s,
        )],
        "var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
    );
    round_trip(
        "k3s without a template",
        &[(
            "var/lib/rancher/k3s/agent/etc/containerd/config.toml",
            "version = 2\n",
        )],
        "var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
    );
    round_trip(
        "CRI-O",
        &[(
            "etc/crio/crio.conf",
            "[crio.runtime]\ndefault_runtime = \"runc\"\n",
        )],
        "etc/crio/crio.conf.d/50-strict-groups.conf",
    );
}

#[test]
fn an_existing_node_config_is_kept_and_an_edited_runtime_config_keeps_its_edits() {
    let comments = corpus("comments-and-runtimes.toml");
    let root = node(&[
        ("etc/containerd/config.toml", &comments),
        (
            "etc/strict-groups/config.toml",
            "runtime = \"/usr/bin/runc\"\nmode = \"audit\"\n",
        ),
    ]);
    assert!(install(root.path(), &[]).status.success());
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/strict-groups/config.toml")).unwrap(),
        "runtime = \"/usr/bin/runc\"\nmode = \"audit\"\n"
    );
    // The operator edits containerd's config after the install.
    let config = root.path().join("etc/containerd/config.toml");
    let edit = uninstall_after_an_operator_edit(root.path(), &config);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), comments + edit);
    assert!(!root.path().join("usr/local/bin/strict-groups").exists());
}

/// A GPU node: `--wrap nvidia` adds the handler strict-groups-nvidia, run by
/// a link to the wrapper, with nvidia's options; the node config names
/// nvidia's runtime for that link, which then runs it. Again: nothing
/// changes; `--uninstall`: the root as before. Where it cannot wrap, it
/// changes nothing.
#[test]
fn a_second_runtime_is_wrapped_through_its_own_link() {
    let config_path = "etc/containerd/config.toml";
    let root = node(&[(config_path, "")]);
    // nvidia's runtime, standing in: it says how it was run.
    let gpu = root.path().join("usr/bin/nvidia-container-runtime");
    std::fs::write(&gpu, "#!/bin/sh\necho \"nvidia runtime: $*\"\n").unwrap();
    std::fs::set_permissions(&gpu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gpu = gpu.display().to_string();
    let containerd_config = corpus("comments-and-runtimes.toml")
        .replace("\"/usr/bin/nvidia-container-runtime\"", &format!("{gpu:?}"));
    std::fs::write(root.path().join(config_path), &containerd_config).unwrap();
    let before = snapshot(root.path());

    // No such entry, a name that is no entry's, or a runtime without
    // containerd's own config: refused, nothing changed.
    for (args, says) in [
        (
            &["--wrap", "nosuch"][..],
            "cannot wrap runtime entry nosuch; nothing was changed",
        ),
        (&["--wrap", "../x"][..], "not a runtime entry name"),
        (&["--wrap", "*"][..], "not a runtime entry name"),
        (&["--wrap="][..], "--wrap needs a value"),
        (
            &["--wrap", "kata"][..],
            "cannot wrap runtime entry kata; nothing was changed",
        ),
        (
            &["--wrap", "nvidia", "--runtime", "crio"][..],
            "--wrap is for containerd",
        ),
    ] {
        let out = install(root.path(), args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert_eq!(snapshot(root.path()), before, "{args:?} changed the root");
    }

    let out = install(root.path(), &["--wrap", "nvidia"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let link = root.path().join("usr/local/bin/strict-groups-nvidia");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("strict-groups")
    );
    let text = std::fs::read_to_string(root.path().join(config_path)).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let entry = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["strict-groups-nvidia"];
    assert_eq!(
        entry["options"]["BinaryName"].as_str(),
        Some("/usr/local/bin/strict-groups-nvidia")
    );
    assert_eq!(entry["options"]["SystemdCgroup"].as_bool(), Some(true));
    let node_config = root.path().join("etc/strict-groups/config.toml");
    let loaded = strict_groups::config::NodeConfig::load_from(&node_config).unwrap();
    assert_eq!(loaded.config.runtime_for("strict-groups-nvidia"), gpu);
    assert_eq!(loaded.config.runtime_for("strict-groups"), "runc");
    // The link runs nvidia's runtime (a command it passes through).
    let ran = Command::new(&link)
        .args(["state", "some-container"])
        .env("STRICT_GROUPS_CONFIG", &node_config)
        .output()
        .unwrap();
    assert_eq!(stdout(&ran), "nvidia runtime: state some-container");

    again_then_uninstall("--wrap nvidia", root.path(), &["--wrap", "nvidia"], &before);

    // Installed again and containerd's config edited after: --uninstall
    // takes out both entries and keeps the edit.
    assert!(install(root.path(), &["--wrap", "nvidia"]).status.success());
    let config = root.path().join(config_path);
    let edit = uninstall_after_an_operator_edit(root.path(), &config);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        containerd_config + edit
    );
    assert!(!link.exists() && !link.is_symlink());

    // The link made by hand beforehand (as the README's steps do): kept as
    // a link, and given back as one.
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("strict-groups", &link).unwrap();
    let before = snapshot(root.path());
    assert!(install(root.path(), &["--wrap", "nvidia"]).status.success());
    let out = install(root.path(), &["--uninstall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot(root.path()), before, "the link given back");

    // The operator's own node config: --wrap adds its key, the operator
    // edits the file after, --uninstall takes out only the key.
    let node_config = root.path().join("etc/strict-groups/config.toml");
    std::fs::create_dir_all(node_config.parent().unwrap()).unwrap();
    std::fs::write(&node_config, "runtime = \"runc\"\nmode = \"audit\"\n").unwrap();
    assert!(install(root.path(), &["--wrap", "nvidia"]).status.success());
    let text = std::fs::read_to_string(&node_config).unwrap();
    assert!(text.contains("strict-groups-nvidia = "), "{text}");
    std::fs::write(&node_config, text.replace("audit", "enforce")).unwrap();
    let out = install(root.path(), &["--uninstall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&node_config).unwrap(),
        "runtime = \"runc\"\nmode = \"enforce\"\n"
    );
}

/// A GPU node whose default runtime is nvidia's: the node config written at
/// install names nvidia's runtime, so that the strict-groups handler runs
/// what the default one does.
#[test]
fn a_node_config_written_at_install_names_the_default_entrys_runtime() {
    let root = node(&[]);
    let gpu = root.path().join("usr/bin/nvidia-container-runtime");
    std::fs::write(&gpu, "#!/bin/sh\necho \"nvidia runtime: $*\"\n").unwrap();
    std::fs::set_permissions(&gpu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gpu = gpu.display().to_string();
    let config = corpus("gpu-nvidia-default.toml")
        .replace("\"/usr/bin/nvidia-container-runtime\"", &format!("{gpu:?}"));
    assert!(config.contains(&gpu));
    let config_path = root.path().join("etc/containerd/config.toml");
    std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
    // A first run stops at containerd's broken config, after writing the
    // node config; the run after the fix still names nvidia's runtime there.
    std::fs::write(&config_path, "version = 2\n[plugins\n").unwrap();
    assert!(!install(root.path(), &[]).status.success());
    std::fs::write(&config_path, config).unwrap();
    let out = install(root.path(), &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let node_config = root.path().join("etc/strict-groups/config.toml");
    let loaded = strict_groups::config::NodeConfig::load_from(&node_config).unwrap();
    assert_eq!(loaded.config.runtime, gpu);
    let ran = Command::new(root.path().join("usr/local/bin/strict-groups"))
        .args(["state", "some-container"])
        .env("STRICT_GROUPS_CONFIG", &node_config)
        .output()
        .unwrap();
    assert_eq!(stdout(&ran), "nvidia runtime: state some-container");
    // The node config is the operator's from then on: kept as it is.
    std::fs::write(&node_config, "runtime = \"runc\"\n").unwrap();
    assert!(install(root.path(), &[]).status.success());
    assert_eq!(
        std::fs::read_to_string(&node_config).unwrap(),
        "runtime = \"runc\"\n"
    );
}

#[test]
fn failures_are_clear_and_exit_non_zero() {
    let root = node(&[("etc/containerd/config.toml", "version = 2\n[plugins\n")]);
    let out = install(root.path(), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("install.sh: error: configuring containerd failed"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("not valid TOML"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/containerd/config.toml")).unwrap(),
        "version = 2\n[plugins\n"
    );
    let out = Command::new("sh")
        .arg(install_sh())
        .args([
            "--root",
            "/nonexistent-root",
            "--binary",
            "/nonexistent/strict-groups",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no strict-groups binary"),
        "{}",
        stderr(&out)
    );
    let out = Command::new("sh")
        .arg(install_sh())
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_option_without_its_value_is_a_usage_error() {
    for args in [
        &["--root"][..],
        &["--root", "--restart"],
        &["--root="],
        &["--binary"],
    ] {
        let out = Command::new("sh")
            .arg(install_sh())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            stderr(&out).contains("needs a value"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// The binary does not fit (a 1 MiB file system): the script fails, says
/// so, leaves no temp file and the installed binary as it was.
#[test]
fn a_failed_binary_copy_fails_the_install_and_leaves_the_old_binary() {
    common::require_root();
    let root = node(&[]);
    let bin_dir = root.path().join("usr/local/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&bin_dir)
        .status()
        .unwrap();
    assert!(mounted.success());
    std::fs::write(bin_dir.join("strict-groups"), "#!/bin/sh\necho old\n").unwrap();
    let out = install(root.path(), &[]);
    let listing: Vec<String> = std::fs::read_dir(&bin_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let old = std::fs::read_to_string(bin_dir.join("strict-groups")).unwrap();
    let _ = Command::new("umount").arg(&bin_dir).status();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("install.sh: error: copying") && stderr(&out).contains("unchanged"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stdout(&out).contains("installed /usr/local/bin"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        listing,
        vec!["strict-groups".to_string()],
        "a temp file was left"
    );
    assert_eq!(old, "#!/bin/sh\necho old\n");
}

/// `--restart` restarts the runtime's service through PID 1's namespaces
/// (`--root` is the host's root as the DaemonSet mounts it). Stand-ins for
/// nsenter and systemctl on PATH record what would be run.
#[test]
fn restart_restarts_the_running_service_and_a_failed_restart_fails() {
    let comments = corpus("comments-and-runtimes.toml");
    let root = node(&[("etc/containerd/config.toml", &comments)]);
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("calls");
    let stand_in = |name: &str, body: &str| {
        let p = bin.path().join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> {}\n{body}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    stand_in(
        "nsenter",
        "while [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"",
    );
    stand_in(
        "systemctl",
        "[ \"$1\" = restart ] && [ -e \"$(dirname \"$0\")/fail\" ] && exit 1; exit 0",
    );
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let run = |args: &[&str]| {
        Command::new("sh")
            .arg(install_sh())
            .arg("--root")
            .arg(root.path())
            .arg("--binary")
            .arg(wrapper_bin())
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let out = run(&["--restart"]);
    assert!(out.status.success(), "{out:?}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("systemctl restart containerd"), "{calls}");
    assert!(calls.contains("nsenter -t 1 -m"), "{calls}");
    // Nothing changed on a second run: no restart.
    std::fs::remove_file(&log).unwrap();
    assert!(run(&["--restart"]).status.success());
    assert!(
        !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("restart containerd")
    );
    // A restart that fails is an error, named.
    std::fs::write(bin.path().join("fail"), "").unwrap();
    let out = run(&["--uninstall", "--restart"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("restarting containerd failed"),
        "{}",
        stderr(&out)
    );
}

/// A throw-away OpenPGP key in its own GNUPGHOME: signs files, exports its
/// public half, and stops its agent when dropped.
struct ReleaseKey {
    home: tempfile::TempDir,
}

impl ReleaseKey {
    fn new(uid: &str) -> Self {
        let key = ReleaseKey {
            home: tempfile::tempdir().unwrap(),
        };
        key.gpg(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ]);
        key
    }

    fn gpg(&self, args: &[&str]) {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .expect("gpg (apt-get install gnupg)");
        assert!(out.status.success(), "gpg {args:?}: {}", stderr(&out));
    }

    fn sign(&self, file: &Path) {
        let asc = format!("{}.asc", file.display());
        let file = file.to_str().unwrap();
        self.gpg(&["--armor", "--detach-sign", "--output", &asc, file]);
    }

    fn export(&self, to: &Path) {
        self.gpg(&["--export", "--output", to.to_str().unwrap()]);
    }
}

impl Drop for ReleaseKey {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// `--checksums` and `--keyring`: the binary is installed only when a good
/// signature by the given key covers a SHA256SUMS that lists its hash under
/// its name; each kind of tampering is refused before the binary runs, and
/// the node is left untouched.
#[test]
fn a_release_is_verified_before_it_is_installed() {
    let rel = tempfile::tempdir().unwrap();
    let name = "strict-groups-0.1.0-x86_64";
    let binary = rel.path().join(name);
    std::fs::copy(wrapper_bin(), &binary).unwrap();
    let sha = |p: &Path| {
        let out = Command::new("sha256sum").arg(p).output().unwrap();
        stdout(&out).split_whitespace().next().unwrap().to_string()
    };
    let sums = rel.path().join("SHA256SUMS");
    let listing = format!(
        "{}  strict-groups_0.1.0-1_amd64.deb\n{}  {name}\n",
        "ab".repeat(32),
        sha(&binary)
    );
    std::fs::write(&sums, &listing).unwrap();
    let key = ReleaseKey::new("strict-groups test release <release@example.invalid>");
    key.sign(&sums);
    let keyring = rel.path().join("release-key.gpg");
    key.export(&keyring);
    let other = ReleaseKey::new("someone else <other@example.invalid>");
    let other_keyring = rel.path().join("other-key.gpg");
    other.export(&other_keyring);

    let run = |binary: &Path, args: &[&str]| {
        let root = node(&[]);
        let out = Command::new("sh")
            .arg(install_sh())
            .arg("--root")
            .arg(root.path())
            .arg("--binary")
            .arg(binary)
            .args(args)
            .output()
            .unwrap();
        let installed = root.path().join("usr/local/bin/strict-groups").exists();
        (out, installed)
    };
    let (sums_s, key_s, other_s) = (
        sums.to_str().unwrap(),
        keyring.to_str().unwrap(),
        other_keyring.to_str().unwrap(),
    );

    let (out, installed) = run(&binary, &["--checksums", sums_s, "--keyring", key_s]);
    assert!(out.status.success() && installed, "{}", stderr(&out));
    assert!(stdout(&out).contains("good signature"), "{}", stdout(&out));
    assert!(stdout(&out).contains("SHA-256 matches"), "{}", stdout(&out));

    let refused = |binary: &Path, args: &[&str], why: &str| {
        let (out, installed) = run(binary, args);
        assert!(!out.status.success(), "{why}: installed anyway");
        assert!(!installed, "{why}: the binary was put on the node");
        assert!(stderr(&out).contains(why), "{why}: {}", stderr(&out));
    };
    refused(
        &binary,
        &["--checksums", sums_s, "--keyring", other_s],
        "is not a good signature",
    );
    // A tampered binary under the listed name.
    let evil_dir = tempfile::tempdir().unwrap();
    let evil = evil_dir.path().join(name);
    let mut bytes = std::fs::read(&binary).unwrap();
    bytes.push(0);
    std::fs::write(&evil, bytes).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    refused(
        &evil,
        &["--checksums", sums_s, "--keyring", key_s],
        "refusing to install",
    );
    // A SHA256SUMS changed after signing: here, to list the tampered binary.
    std::fs::write(&sums, listing.replace(&sha(&binary), &sha(&evil))).unwrap();
    refused(
        &evil,
        &["--checksums", sums_s, "--keyring", key_s],
        "is not a good signature",
    );
    // Unsigned, the changed list is taken at its word: the keyring is what
    // makes it trustworthy.
    let (out, installed) = run(&evil, &["--checksums", sums_s]);
    assert!(out.status.success() && installed, "{}", stderr(&out));
    std::fs::write(&sums, &listing).unwrap();
    // A binary by another name than the listed one.
    let renamed = evil_dir.path().join("strict-groups");
    std::fs::copy(&binary, &renamed).unwrap();
    refused(
        &renamed,
        &["--checksums", sums_s],
        "lists no file named strict-groups",
    );
    // No signature file beside SHA256SUMS.
    std::fs::remove_file(rel.path().join("SHA256SUMS.asc")).unwrap();
    refused(
        &binary,
        &["--checksums", sums_s, "--keyring", key_s],
        "SHA256SUMS.asc: no such file",
    );
    let (out, _) = run(&binary, &["--keyring", key_s]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
