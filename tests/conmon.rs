//! CRI-O's path, for real: podman 4.3 runs containers through conmon 2.1.6,
//! CRI-O's monitor, with strict-groups as the OCI runtime (`--runtime`).
//! conmon is the wrapper's parent on create and exec, so the wrapper believes
//! CRI-O's keys only; podman computes the image groups itself and keeps no
//! record of the declared ones, so D comes from the rootfs. Private storage
//! (`--root`, `--runroot`), cgroupfs, no network; images are imported from
//! busybox rootfs tarballs.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new(node_config: &str) -> Podman {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("sg-podman")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // conmon passes the runtime only the environment containers.conf names.
        std::fs::write(
            d.join("containers.conf"),
            "[engine]\nconmon_env_vars = [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"]\n",
        )
        .unwrap();
        let p = Podman { dir };
        p.set_node_config(node_config);
        p
    }

    fn set_node_config(&self, text: &str) {
        let log = self.decision_log();
        std::fs::write(
            self.dir.path().join("strict-groups.toml"),
            format!(
                "runtime = {:?}\ndecision_log = \"{}\"\n{text}",
                bare_runtime(),
                log.display()
            ),
        )
        .unwrap();
    }

    /// The runtime podman is given: the wrapper with this test's node
    /// config. podman runs `start`, `kill` and `delete` itself with an
    /// environment of its own, so the config path is set here, by a script
    /// that execs the wrapper (conmon stays its parent).
    fn wrapper(&self) -> String {
        let script = self.dir.path().join("strict-groups");
        if !script.exists() {
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh\nSTRICT_GROUPS_CONFIG={} exec {} \"$@\"\n",
                    self.dir.path().join("strict-groups.toml").display(),
                    wrapper_bin()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        script.display().to_string()
    }

    fn decision_log(&self) -> PathBuf {
        self.dir.path().join("decisions.log")
    }

    fn decisions(&self) -> Vec<Value> {
        std::fs::read_to_string(self.decision_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn podman(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .output()
            .expect("podman (Debian's podman package)")
    }

    /// Imports a busybox rootfs with `image`'s files as `name`.
    fn import(&self, name: &str, image: &Image) {
        self.import_shaped(name, image, |_| {});
    }

    /// Imports a busybox rootfs with `image`'s files, then shaped by `shape`.
    fn import_shaped(&self, name: &str, image: &Image, shape: impl Fn(&std::path::Path)) {
        let rootfs = self
            .dir
            .path()
            .join(format!("rootfs-{}", name.replace(['/', ':'], "-")));
        build_rootfs(&rootfs, image);
        shape(&rootfs);
        let tar = rootfs.with_extension("tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = self.podman(&["import", tar.to_str().unwrap(), name]);
        assert!(out.status.success(), "{out:?}");
    }

    /// `podman run` with `runtime` and the flags these VMs need.
    fn run(&self, runtime: &str, args: &[&str]) -> Output {
        let mut all = vec![
            "--runtime",
            runtime,
            "run",
            "--net",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        all.extend_from_slice(args);
        self.podman(&all)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.podman(&["system", "reset", "--force"]);
        // podman leaves overlay mounts of its private root behind otherwise.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("root/overlay"))
            .status();
    }
}

fn groups(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const IMAGE: &str = "localhost/strict-groups-test/kep:1";

/// One test: podman instances lock through one shared memory segment, so
/// two at once would trip over each other.
#[test]
fn through_podman_and_conmon() {
    let p = Podman::new("");
    p.import(IMAGE, &kep_image());
    let shown = strict_groups_for_run_and_exec(&p);
    let refused = refusals_reach_podman(&p);
    let hostile = hostile_images(&p);
    println!("result: {shown}; refused in podman's message: {refused}; {hostile}");
}

/// The real runtime's absolute path (podman's `--runtime` needs one).
fn bare_runtime() -> String {
    let rt = test_runtime();
    if rt.starts_with('/') {
        return rt;
    }
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {rt}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the groups were, for the summary line.
fn strict_groups_for_run_and_exec(p: &Podman) -> String {
    let user = ["--user", "1000", "--group-add", "60000"];
    let run = |runtime: &str, extra: &[&str]| {
        let mut args: Vec<&str> = vec!["--rm"];
        args.extend(user);
        args.extend(extra);
        args.extend([IMAGE, "id", "-G"]);
        p.run(runtime, &args)
    };
    // podman merges the image's group like the CRI runtimes do.
    let bare = groups(&run(&bare_runtime(), &[]));
    assert_eq!(bare, "1000 50000 60000");
    let wrapped = groups(&run(&p.wrapper(), &[]));
    assert_eq!(wrapped, "1000 60000");
    let d = &p.decisions()[0];
    assert_eq!(d["caller"], "cri-o", "{d}");
    assert_eq!(d["source"], "rootfs", "{d}");
    assert_eq!(d["removed"], serde_json::json!([50000]));

    // Forged runtime annotations: no sandbox, whoever's words they use.
    let forged = [
        "--annotation",
        "io.kubernetes.cri.container-type=sandbox",
        "--annotation",
        "io.kubernetes.cri-o.ContainerType=sandbox",
    ];
    assert_eq!(groups(&run(&p.wrapper(), &forged)), "1000 60000");

    // An exec (conmon --exec) gets the main process's groups.
    let mut args = vec!["-d"];
    args.extend(user);
    args.extend([IMAGE, "sleep", "300"]);
    let id = groups(&p.run(&p.wrapper(), &args));
    let exec = groups(&p.podman(&["exec", &id, "id", "-G"]));
    assert_eq!(exec, "1000 60000");
    // An exec with its own --user: podman looks the user's groups up in the
    // image again (50000), which the wrapper removes.
    let out = p.podman(&["exec", "--user", "1000", &id, "id", "-G"]);
    assert_eq!(groups(&out), "1000", "exec as the user");
    let removed: Vec<Value> = p
        .decisions()
        .into_iter()
        .filter(|d| d["action"] == "exec")
        .map(|d| d["removed"].clone())
        .collect();
    assert!(removed.contains(&serde_json::json!([50000])), "{removed:?}");
    format!(
        "podman run: bare {bare}, wrapped {wrapped} (forged annotations too); podman exec {exec}; D from the rootfs"
    )
}

/// What was refused, for the summary line.
fn refusals_reach_podman(p: &Podman) -> &'static str {
    let out = p.run(
        &p.wrapper(),
        &[
            "--rm",
            "--user",
            "1000",
            "--annotation",
            "strict-groups.io/supplemental-groups-policy=strict",
            IMAGE,
            "id",
            "-G",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strict-groups: container") && err.contains("invalid value \"strict\""),
        "{err}"
    );

    // An image whose /etc/group renames the kept gids for runc 1.1 (other
    // runtimes use the numbers).
    if test_runtime() != "runc" {
        return "a bad annotation";
    }
    // An image whose /etc/group renames the kept gids for runc 1.1.
    let renaming = Image {
        passwd: kep_image().passwd,
        group: Some("1000:x:0:\n60000:x:50000:\n".into()),
    };
    let name = "localhost/strict-groups-test/renaming:1";
    p.import(name, &renaming);
    let out = p.run(
        &bare_runtime(),
        &[
            "--rm",
            "--user",
            "1000",
            "--group-add",
            "60000",
            name,
            "id",
            "-G",
        ],
    );
    assert_eq!(groups(&out), "1000 0 50000", "runc 1.1 renames the gids");
    let out = p.run(
        &p.wrapper(),
        &[
            "--rm",
            "--user",
            "1000",
            "--group-add",
            "60000",
            name,
            "id",
            "-G",
        ],
    );
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("would give the process the groups 0,50000"),
        "{err}"
    );
    "a bad annotation, runc's renaming image"
}

/// Shapes an image's rootfs.
type Shape<'a> = Box<dyn Fn(&std::path::Path) + 'a>;

/// Hostile images through podman and conmon (D from the rootfs): links out of
/// the rootfs to a host file that would grant 50000, and garbage around the
/// real entry. Every container runs with the Strict groups; a host file is
/// never read (the decision removes only what the image itself grants).
fn hostile_images(p: &Podman) -> String {
    use std::os::unix::fs::symlink;
    let host = p.dir.path().join("host-group");
    std::fs::write(&host, "onhost:x:50000:alice\n").unwrap();
    let in_image = |root: &std::path::Path| {
        let copy = root.join(host.strip_prefix("/").unwrap());
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(copy, "inimage:x:51000:alice\n").unwrap();
        std::fs::remove_file(root.join("etc/group")).unwrap();
    };
    let cases: Vec<(&str, Shape<'_>)> = vec![
        (
            "absolute-link",
            Box::new(|root: &std::path::Path| {
                in_image(root);
                symlink(&host, root.join("etc/group")).unwrap();
            }),
        ),
        (
            "relative-link",
            Box::new(|root: &std::path::Path| {
                in_image(root);
                symlink(
                    format!("../../../../../../..{}", host.display()),
                    root.join("etc/group"),
                )
                .unwrap();
            }),
        ),
        (
            "garbage",
            Box::new(|root: &std::path::Path| {
                let mut g = b"\0\xff\xfe:x:1:\n\xc3\x28bad:x:2:alice\n".to_vec();
                g.extend(b"group-in-image:x:50000:alice\n\0");
                std::fs::write(root.join("etc/group"), g).unwrap();
            }),
        ),
    ];
    let mut shown = Vec::new();
    for (name, shape) in cases {
        let image = format!("localhost/strict-groups-test/hostile-{name}:1");
        p.import_shaped(&image, &kep_image(), shape);
        let args = [
            "--rm",
            "--user",
            "1000",
            "--group-add",
            "60000",
            &image,
            "id",
            "-G",
        ];
        let bare = groups(&p.run(&bare_runtime(), &args));
        let before = p.decisions().len();
        let wrapped = groups(&p.run(&p.wrapper(), &args));
        assert_eq!(wrapped, "1000 60000", "{name}");
        let creates: Vec<Value> = p.decisions()[before..]
            .iter()
            .filter(|d| d["action"] == "create")
            .cloned()
            .collect();
        assert_eq!(creates.len(), 1, "{name}: {creates:?}");
        // Exactly what podman added from the image is removed (a host file's
        // 50000 is never among them: podman reads inside the rootfs too).
        let mut added: Vec<u32> = bare
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .filter(|g| ![1000, 60000].contains(g))
            .collect();
        added.sort();
        assert_eq!(creates[0]["removed"], serde_json::json!(added), "{name}");
        assert!(
            !added.contains(&50000) || name == "garbage",
            "{name}: {bare}"
        );
        shown.push(format!("{name}: bare {bare}, wrapped {wrapped}"));
    }
    format!("hostile images: {}", shown.join("; "))
}
