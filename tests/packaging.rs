//! What a cluster applies and what a node installs from: the manifests agree
//! with each other and with the installer, and the DaemonSet installer image
//! (built without a container engine) installs strict-groups onto a node's
//! root when run by a real containerd through the CRI API.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cri::{CriNode, PodSpec};
use common::{require_root, stdout};
use serde_yaml::Value;

fn top() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(top().join(rel)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

const LABEL: &str = "strict-groups.io/runtime";

#[test]
fn manifests_agree_with_each_other_and_the_installer() {
    let rc = &yaml_docs("runtimeclass/runtimeclass.yaml")[0];
    assert_eq!(rc["kind"], "RuntimeClass");
    assert_eq!(
        rc["handler"].as_str(),
        Some(strict_groups::configure::HANDLER)
    );
    assert_eq!(rc["scheduling"]["nodeSelector"][LABEL], "installed");

    let ds = &yaml_docs("packaging/daemonset/daemonset.yaml")[0];
    assert_eq!(ds["kind"], "DaemonSet");
    assert_eq!(
        ds["spec"]["template"]["spec"]["nodeSelector"][LABEL],
        "installed"
    );
    let install = std::fs::read_to_string(top().join("install.sh")).unwrap();
    assert!(
        install.contains(&format!("{LABEL}=installed")),
        "install.sh names the label"
    );

    let pod = &yaml_docs("runtimeclass/kep-example-pod.yaml")[0];
    assert_eq!(pod["spec"]["runtimeClassName"], rc["metadata"]["name"]);

    let vap = yaml_docs("runtimeclass/admission-policy.yaml");
    assert_eq!(vap[0]["kind"], "ValidatingAdmissionPolicy");
    assert_eq!(vap[1]["kind"], "ValidatingAdmissionPolicyBinding");
    assert_eq!(vap[1]["spec"]["policyName"], vap[0]["metadata"]["name"]);
    let expr = vap[0]["spec"]["validations"][0]["expression"]
        .as_str()
        .unwrap();
    assert!(
        expr.contains("runtimeClassName == 'strict-groups'"),
        "{expr}"
    );
}

/// The static binary that ships (`$STRICT_GROUPS_STATIC_BIN`, else built).
fn static_binary() -> PathBuf {
    if let Ok(p) = std::env::var("STRICT_GROUPS_STATIC_BIN") {
        return PathBuf::from(p);
    }
    let out = Command::new(top().join("scripts/build-release.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    top().join(stdout(&out))
}

/// The installer image runs from a multi-architecture archive (multiarch.sh):
/// containerd picks this node's image from the index. The other image has
/// `true` as its shell, so that had containerd picked it, nothing would be
/// installed.
#[test]
fn daemonset_image_installs_onto_the_node_root() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let name = "localhost/strict-groups-test/installer:1";
    let (this_arch, other_arch) = match std::env::consts::ARCH {
        "x86_64" => ("x86_64", "aarch64"),
        _ => ("aarch64", "x86_64"),
    };
    let image = |arch: &str, busybox: Option<&str>| {
        let archive = dir.path().join(format!("installer-{arch}.tar"));
        let mut cmd = Command::new(top().join("packaging/daemonset/build-image.sh"));
        cmd.arg(static_binary())
            .arg(&archive)
            .arg(arch)
            .env("IMAGE_NAME", name);
        if let Some(b) = busybox {
            cmd.env("BUSYBOX", b);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let digest = stdout(&out);
        assert_pinned_by_digest(&archive, &digest);
        (archive, digest)
    };
    let (this, this_digest) = image(this_arch, None);
    let (other, other_digest) = image(other_arch, Some("/bin/true"));
    let archive = dir.path().join("installer.tar");
    let out = Command::new(top().join("packaging/daemonset/multiarch.sh"))
        .arg(&archive)
        .args([&this, &other])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let index_digest = stdout(&out);
    let index = oci_blob(&archive, &index_digest);
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let arch = m["platform"]["architecture"].as_str().unwrap();
            (m["digest"].as_str().unwrap().to_string(), arch.to_string())
        })
        .collect();
    let oci = |arch: &str| if arch == "x86_64" { "amd64" } else { "arm64" }.to_string();
    assert_eq!(
        platforms,
        [
            (this_digest, oci(this_arch)),
            (other_digest, oci(other_arch))
        ]
    );
    let out = Command::new(top().join("packaging/daemonset/pinned.sh"))
        .args([&index_digest, "all"])
        .output()
        .unwrap();
    let ds: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    assert!(
        pod["containers"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{index_digest}"))
    );
    assert!(pod["nodeSelector"].get("kubernetes.io/arch").is_none());

    // The node's root: runc and a containerd config with comments.
    let host = dir.path().join("host");
    std::fs::create_dir_all(host.join("usr/bin")).unwrap();
    std::fs::write(host.join("usr/bin/runc"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir_all(host.join("etc/containerd")).unwrap();
    let original =
        std::fs::read_to_string(top().join("tests/configs/comments-and-runtimes.toml")).unwrap();
    std::fs::write(host.join("etc/containerd/config.toml"), &original).unwrap();

    let mut node = CriNode::start();
    node.import_archive(&archive);
    let spec = PodSpec {
        name: "installer".into(),
        run_as_user: Some(0),
        ..Default::default()
    };
    let pod = node.run_pod("runc", &spec).unwrap();
    let config = CriNode::container_with_mount(&pod, "install", name, &host, "/host");
    node.start_container_with(&pod, config).unwrap();

    let installed = host.join("usr/local/bin/strict-groups");
    let state = host.join("var/lib/strict-groups/install/configured.sha256");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(
        node.containerd
            .dir
            .path()
            .join("pods/installer/install.log"),
    )
    .unwrap_or_default();
    assert!(
        installed.exists() && state.exists(),
        "the installer did not finish:\n{log}"
    );
    let config = std::fs::read_to_string(host.join("etc/containerd/config.toml")).unwrap();
    // Every line of the original is still there, in order.
    let mut rest = config.as_str();
    for line in original.lines() {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} lost or reordered:\n{config}"));
        rest = &rest[at + line.len()..];
    }
    assert!(
        config.contains("BinaryName = \"/usr/local/bin/strict-groups\""),
        "{config}"
    );
    let version = Command::new(&installed).arg("version").output().unwrap();
    assert_eq!(
        stdout(&version),
        format!("strict-groups {}", env!("CARGO_PKG_VERSION"))
    );
    node.remove_pod(&pod);
}

/// A file of an OCI archive, parsed: `index.json`, or a blob by its digest
/// (checked against it).
fn oci_blob(archive: &Path, name_or_digest: &str) -> serde_json::Value {
    let path = match name_or_digest.strip_prefix("sha256:") {
        Some(hex) => format!("./blobs/sha256/{hex}"),
        None => format!("./{name_or_digest}"),
    };
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new(&path) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            if name_or_digest.starts_with("sha256:") {
                assert_eq!(format!("sha256:{}", sha256_hex_of(&bytes)), name_or_digest);
            }
            return serde_json::from_slice(&bytes).unwrap();
        }
    }
    panic!("{path} not in {}", archive.display());
}

/// The digest build-image.sh printed is the archive's manifest, and the
/// DaemonSet that pinned.sh writes runs exactly that image, per architecture.
fn assert_pinned_by_digest(archive: &Path, digest: &str) {
    let index = oci_blob(archive, "index.json");
    assert_eq!(index["manifests"][0]["digest"], digest);
    oci_blob(archive, digest);
    for (arch, oci_arch) in [("x86_64", "amd64"), ("aarch64", "arm64")] {
        let out = Command::new(top().join("packaging/daemonset/pinned.sh"))
            .args([digest, arch])
            .env("IMAGE_REPO", "registry.test/sg/installer")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let ds: Value = serde_yaml::from_slice(&out.stdout).unwrap();
        let pod = &ds["spec"]["template"];
        assert_eq!(
            pod["spec"]["containers"][0]["image"].as_str(),
            Some(format!("registry.test/sg/installer@{digest}").as_str())
        );
        assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/arch"], oci_arch);
        assert_eq!(pod["spec"]["nodeSelector"][LABEL], "installed");
        let name = format!("strict-groups-installer-{oci_arch}");
        assert_eq!(ds["metadata"]["name"].as_str(), Some(name.as_str()));
        assert_eq!(
            ds["spec"]["selector"]["matchLabels"],
            pod["metadata"]["labels"]
        );
    }
    let out = Command::new(top().join("packaging/daemonset/pinned.sh"))
        .args(["latest", "x86_64"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a tag is not a digest");
}

/// `packaging/build.sh` on this machine's architecture: the .deb installs a
/// working binary with `dpkg -i` and goes away with `dpkg --purge`; the .rpm
/// holds the same files and its binary runs.
#[test]
fn deb_and_rpm_install_a_working_binary() {
    require_root();
    let arch = std::env::consts::ARCH;
    let out = Command::new(top().join("packaging/build.sh"))
        .arg(arch)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = env!("CARGO_PKG_VERSION");
    let dist = top().join("dist");
    let deb_arch = if arch == "x86_64" { "amd64" } else { "arm64" };
    let deb = dist.join(format!("strict-groups_{version}-1_{deb_arch}.deb"));
    let rpm = dist.join(format!("strict-groups-{version}-1.{arch}.rpm"));

    let dpkg = |args: &[&str]| Command::new("dpkg").args(args).output().unwrap();
    let out = dpkg(&["-i", deb.to_str().unwrap()]);
    assert!(out.status.success(), "dpkg -i: {out:?}");
    let v = Command::new("/usr/bin/strict-groups")
        .arg("version")
        .output()
        .unwrap();
    assert_eq!(stdout(&v), format!("strict-groups {version}"));
    let config = std::fs::read_to_string("/etc/strict-groups/config.toml").unwrap();
    assert!(strict_groups::config::NodeConfig::parse(&config).is_ok());
    assert!(Path::new("/usr/share/doc/strict-groups/runtimeclass/runtimeclass.yaml").exists());
    let out = dpkg(&["--purge", "strict-groups"]);
    assert!(out.status.success(), "dpkg --purge: {out:?}");
    assert!(!Path::new("/usr/bin/strict-groups").exists());
    assert!(!Path::new("/etc/strict-groups/config.toml").exists());

    // The .rpm: its file list, and its binary extracted and run.
    let list = Command::new("rpm")
        .args(["-qpl"])
        .arg(&rpm)
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let files = stdout(&list);
    for f in ["/usr/bin/strict-groups", "/etc/strict-groups/config.toml"] {
        assert!(
            files.lines().any(|l| l == f),
            "{f} not in the rpm:\n{files}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let extract = Command::new("sh")
        .arg("-c")
        .arg(format!("rpm2cpio '{}' | cpio -idm --quiet", rpm.display()))
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(extract.success());
    let v = Command::new(dir.path().join("usr/bin/strict-groups"))
        .arg("version")
        .output()
        .unwrap();
    assert_eq!(stdout(&v), format!("strict-groups {version}"));

    sbom_names_what_is_inside(&dist, arch, &[&deb, &rpm]);
}

fn sha256_hex_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(path: &Path) -> String {
    sha256_hex_of(&std::fs::read(path).unwrap())
}

/// The SBOM that packaging/build.sh writes: the binary and packages by
/// their SHA-256, and exactly the crates that `cargo auditable` recorded
/// inside the binary, each with a licence and the checksum Cargo.lock pins.
fn sbom_names_what_is_inside(dist: &Path, arch: &str, packages: &[&Path]) {
    use std::collections::BTreeSet;
    let version = env!("CARGO_PKG_VERSION");
    let binary = dist.join(format!("strict-groups-{version}-{arch}"));
    let sbom_path = dist.join(format!("strict-groups-{version}-{arch}.spdx.json"));
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sbom_path).unwrap()).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let listed = sbom["packages"].as_array().unwrap();
    let checksum = |p: &serde_json::Value| {
        p["checksums"][0]["checksumValue"]
            .as_str()
            .map(String::from)
    };
    let ours = listed
        .iter()
        .find(|p| p["name"] == "strict-groups")
        .unwrap();
    assert_eq!(checksum(ours), Some(sha256_hex(&binary)));
    for package in packages {
        let name = package.file_name().unwrap().to_str().unwrap();
        let entry = listed.iter().find(|p| p["name"] == name);
        assert_eq!(
            entry.and_then(checksum),
            Some(sha256_hex(package)),
            "{name}"
        );
    }

    // The dependency list cargo auditable put in the binary (.dep-v0, zlib JSON).
    let section = tempfile::NamedTempFile::new().unwrap();
    let scratch = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("objcopy")
        .arg(format!(
            "--dump-section=.dep-v0={}",
            section.path().display()
        ))
        .arg(&binary)
        .arg(scratch.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "no .dep-v0 section: {out:?}");
    let json = flate2::read::ZlibDecoder::new(std::fs::File::open(section.path()).unwrap());
    let audit: serde_json::Value = serde_json::from_reader(json).unwrap();
    let embedded: BTreeSet<(String, String)> = audit["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(embedded.len() > 20, "{embedded:?}");

    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(top().join("Cargo.lock")).unwrap()).unwrap();
    let pinned = |name: &str, version: &str| {
        lock["package"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name) && p["version"].as_str() == Some(version))
            .and_then(|p| p.get("checksum"))
            .and_then(|c| c.as_str())
            .map(String::from)
    };
    let mut in_sbom = BTreeSet::from([("strict-groups".to_string(), version.to_string())]);
    for crate_ in listed
        .iter()
        .filter(|p| p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-Crate-"))
    {
        let (name, v) = (
            crate_["name"].as_str().unwrap(),
            crate_["versionInfo"].as_str().unwrap(),
        );
        assert_eq!(checksum(crate_), pinned(name, v), "{name} {v}");
        assert_ne!(crate_["licenseDeclared"], "NOASSERTION", "{name} {v}");
        in_sbom.insert((name.into(), v.into()));
    }
    assert_eq!(
        in_sbom, embedded,
        "the SBOM and the binary's own list differ"
    );
}
