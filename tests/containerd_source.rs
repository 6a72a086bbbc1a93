//! The exact source of the declared groups: containerd's own record of the
//! CRI request, read from a real (private) containerd. The wrapper finds it
//! as under containerd's shim: `TTRPC_ADDRESS` names the socket, the last
//! component of `--root` the namespace.

mod common;

use common::containerd::{PrivateContainerd, cri_metadata};
use common::*;
use serde_json::json;

/// A containerd of the test's own (stopped when the test ends, pass or
/// fail), without its CRI plugin: the tests store the CRI records themselves.
fn containerd() -> PrivateContainerd {
    PrivateContainerd::start("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
}

/// Creates a container through the wrapper for a pod that declares
/// `declared` and returns the gids left in its config.json (the runc tests
/// show that runc applies exactly those); `record` false leaves containerd
/// without a record for it.
fn run_with_containerd(
    image: &Image,
    gid: u32,
    a: &[u32],
    declared: &[u32],
    record: bool,
) -> (String, Bundle) {
    require_root();
    let ctd = containerd();
    let spec = containerd_spec(&["id", "-G"], 1000, gid, a, &[]);
    let b = Bundle::new("ctd", image, &spec);
    if record {
        ctd.create_record("k8s.io", &b.id, Some(&cri_metadata(&b.id, declared)));
    }
    let config = NodeConfig::runtime("runc");
    let mut cmd = wrapper(&config, &create_args(&b));
    cmd.env("TTRPC_ADDRESS", format!("{}.ttrpc", ctd.socket().display()));
    assert!(status_detached(cmd).success(), "{:?}", b.log_lines());
    let config: serde_json::Value = serde_json::from_slice(&b.config_bytes()).unwrap();
    let groups = config["process"]["user"]["additionalGids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (groups, b)
}

#[test]
fn kep_example() {
    let (groups, b) =
        run_with_containerd(&kep_image(), 1000, &[1000, 50000, 60000], &[60000], true);
    assert_eq!(groups, "1000 60000");
    let d = &b.decisions()[0];
    assert_eq!(d["source"], "containerd");
    assert_eq!(d["removed"], json!([50000]));
    assert!(d.get("note").is_none(), "{d}");
}

#[test]
fn declared_gid_that_the_image_also_grants_is_kept() {
    let (groups, b) = run_with_containerd(&kep_image(), 1000, &[1000, 50000], &[50000], true);
    assert_eq!(groups, "1000 50000");
    assert_eq!(b.decisions()[0]["source"], "containerd");
}

#[test]
fn image_group_zero_is_removed() {
    let image = Image {
        group: Some("root:x:0:alice\n".into()),
        ..kep_image()
    };
    let (groups, _) = run_with_containerd(&image, 1000, &[0, 1000, 60000], &[60000], true);
    assert_eq!(groups, "1000 60000");
}

#[test]
fn fsgroup_volume_gids_and_primary_are_kept() {
    // D = supplementalGroups + fsGroup (2000) + a volume gid (3000).
    let (groups, _) = run_with_containerd(
        &kep_image(),
        1000,
        &[1000, 2000, 3000, 50000, 60000],
        &[60000, 2000, 3000],
        true,
    );
    assert_eq!(groups, "1000 2000 3000 60000");
}

#[test]
fn no_image_file_is_read_when_d_is_exact() {
    // A FIFO as /etc/group would hang a naive reader; with D from containerd
    // the image is not looked at. (runc itself opens /etc/group inside the
    // container and would block on the FIFO: see the end.)
    let image = Image {
        group: None,
        ..kep_image()
    };
    require_root();
    let ctd = containerd();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000], &[]);
    let b = Bundle::new("fifo", &image, &spec);
    nix::unistd::mkfifo(
        &b.path().join("rootfs/etc/group"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    ctd.create_record("k8s.io", &b.id, Some(&cri_metadata(&b.id, &[])));
    // A runtime that uses gids as numbers: the decision reads no image file.
    let crun = fake_runtime("crun version 1.8.1");
    let config = NodeConfig::runtime(&crun.display().to_string());
    let mut cmd = wrapper(&config, &create_args(&b));
    cmd.env("TTRPC_ADDRESS", format!("{}.ttrpc", ctd.socket().display()));
    assert!(status_detached(cmd).success(), "{:?}", b.log_lines());
    assert_eq!(b.decisions()[0]["source"], "containerd");
    assert_eq!(b.decisions()[0]["removed"], json!([50000]));

    // runc (before 1.3) reads /etc/group for the kept gids: the wrapper reads
    // it first, refuses the FIFO at once, and runc never blocks on it.
    let b = Bundle::new("fifo-runc", &image, &spec);
    nix::unistd::mkfifo(
        &b.path().join("rootfs/etc/group"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    ctd.create_record("k8s.io", &b.id, Some(&cri_metadata(&b.id, &[])));
    let mut cmd = wrapper(&NodeConfig::runtime("runc"), &create_args(&b));
    cmd.env("TTRPC_ADDRESS", format!("{}.ttrpc", ctd.socket().display()));
    assert!(!status_detached(cmd).success());
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(log.contains("not a regular file (a FIFO)"), "{log}");
}

#[test]
fn no_record_falls_back_to_the_rootfs() {
    let (groups, b) = run_with_containerd(&kep_image(), 1000, &[1000, 50000, 60000], &[], false);
    assert_eq!(groups, "1000 60000");
    let d = &b.decisions()[0];
    assert_eq!(d["source"], "rootfs");
    assert!(d["note"].as_str().unwrap().contains("no CRI record"), "{d}");
}

#[test]
fn unreachable_containerd_falls_back_to_the_rootfs() {
    require_root();
    let spec = containerd_spec(&["id", "-G"], 1000, 1000, &[1000, 50000, 60000], &[]);
    let b = Bundle::new("noctd", &kep_image(), &spec);
    let config = NodeConfig::runtime("runc");
    let mut cmd = wrapper(&config, &create_args(&b));
    cmd.env("TTRPC_ADDRESS", "/nonexistent/containerd.sock.ttrpc");
    assert!(status_detached(cmd).success(), "{:?}", b.log_lines());
    let d = &b.decisions()[0];
    assert_eq!(d["source"], "rootfs");
    assert!(
        d["note"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/containerd.sock"),
        "{d}"
    );
    assert_eq!(d["removed"], json!([50000]));
}
