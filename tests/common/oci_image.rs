//! Container images built without a registry: one layer holding the static
//! busybox and crafted `/etc` files, packed as an OCI image archive (the
//! layout `ctr images import` reads).
#![allow(dead_code)]

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::BUSYBOX;

/// A file of the image's layer.
#[derive(Clone, Debug)]
pub enum Entry {
    File(String),
    Symlink(String),
}

/// An image: a name, the config's `User` and `Cmd`, and the files under
/// `/etc` (or anywhere) beside busybox.
#[derive(Clone, Debug)]
pub struct OciImage {
    pub name: String,
    pub user: Option<String>,
    pub cmd: Vec<String>,
    pub files: Vec<(String, Entry)>,
}

impl OciImage {
    pub fn new(name: &str) -> OciImage {
        OciImage {
            name: name.to_string(),
            user: None,
            cmd: vec!["sleep".into(), "3600".into()],
            files: Vec::new(),
        }
    }

    /// The image's `/etc/passwd` and `/etc/group` from a rootfs [`Image`]
    /// (e.g. [`super::kep_image`]), so that both kinds of test image share
    /// one definition.
    pub fn with_files(self, image: &super::Image) -> OciImage {
        let files = [("/etc/passwd", &image.passwd), ("/etc/group", &image.group)];
        files
            .into_iter()
            .fold(self, |img, (path, content)| match content {
                Some(c) => img.file(path, c),
                None => img,
            })
    }

    pub fn file(mut self, path: &str, content: &str) -> OciImage {
        self.files
            .push((path.to_string(), Entry::File(content.to_string())));
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> OciImage {
        self.files
            .push((path.to_string(), Entry::Symlink(target.to_string())));
        self
    }

    pub fn user(mut self, user: &str) -> OciImage {
        self.user = Some(user.to_string());
        self
    }

    pub fn cmd(mut self, cmd: &[&str]) -> OciImage {
        self.cmd = cmd.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The uncompressed layer tar.
    fn layer(&self) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, path, std::io::empty()).unwrap();
        };
        for d in ["bin", "etc", "proc", "dev", "sys", "tmp", "root"] {
            dir(&mut tar, d);
        }
        let busybox = std::fs::read(BUSYBOX).expect("install busybox-static");
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(busybox.len() as u64);
        tar.append_data(&mut h, "bin/busybox", busybox.as_slice())
            .unwrap();
        for applet in ["sh", "id", "sleep", "cat", "true", "grep"] {
            symlink(&mut tar, &format!("bin/{applet}"), "busybox");
        }
        for (path, entry) in &self.files {
            let path = path.trim_start_matches('/');
            match entry {
                Entry::File(content) => {
                    let mut h = tar::Header::new_gnu();
                    h.set_mode(0o644);
                    h.set_size(content.len() as u64);
                    tar.append_data(&mut h, path, content.as_bytes()).unwrap();
                }
                Entry::Symlink(target) => symlink(&mut tar, path, target),
            }
        }
        tar.into_inner().unwrap()
    }

    /// Writes the OCI image archive to `path`.
    pub fn write_archive(&self, path: &Path) {
        let layer = self.layer();
        let layer_digest = sha256(&layer);
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let mut config = json!({"Env": ["PATH=/bin"], "Cmd": self.cmd});
        if let Some(user) = &self.user {
            config["User"] = json!(user);
        }
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))
        .unwrap();
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest, "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest, "size": layer.len(),
            }],
        }))
        .unwrap();
        let manifest_digest = sha256(&manifest);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest.len(),
                "annotations": {
                    "io.containerd.image.name": self.name,
                    "org.opencontainers.image.ref.name": self.name.rsplit(':').next().unwrap(),
                },
            }],
        }))
        .unwrap();

        let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, name, data).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add("index.json", &index);
        for blob in [&layer, &config, &manifest] {
            let digest = sha256(blob);
            add(
                &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
                blob,
            );
        }
        tar.into_inner().unwrap();
    }
}

fn symlink(tar: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    tar.append_link(&mut h, path, target).unwrap();
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}
