//! A spec file on disk: a bundle's `config.json` or an exec's process file.
//! Load (capped read, parse), retain gids (splice `additionalGids` in the
//! original bytes), flush (atomic replace, only when the bytes changed): the
//! one way create, exec and explain read and rewrite a spec.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::atomic;
use crate::spec::{self, Config, User};

/// The most the wrapper reads of a `config.json` or process file. containerd
/// writes a few KiB; the Kubernetes API caps a pod's annotations at 256 KiB.
pub const SPEC_CAP: u64 = 16 << 20;

/// A spec file, its bytes as read and what was parsed of them (`T` is
/// [`Config`] or the process's [`User`]).
pub struct SpecFile<T> {
    pub path: PathBuf,
    bytes: Vec<u8>,
    pub doc: T,
}

/// What holds the process user of a spec.
pub trait HasUser {
    fn user(&self) -> &User;
}

impl HasUser for Config {
    fn user(&self) -> &User {
        &self.user
    }
}

impl HasUser for User {
    fn user(&self) -> &User {
        self
    }
}

impl SpecFile<Config> {
    /// A bundle's `config.json` (or crun's `--config` file).
    pub fn load_config(path: &Path) -> Result<Self> {
        let bytes = atomic::read_capped(path, SPEC_CAP)?;
        let doc =
            spec::parse_config(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        Ok(SpecFile {
            path: path.to_path_buf(),
            bytes,
            doc,
        })
    }
}

impl SpecFile<User> {
    /// An exec's `--process` file.
    pub fn load_process(path: &Path) -> Result<Self> {
        let bytes = atomic::read_capped(path, SPEC_CAP)?;
        let doc = spec::parse_process(&bytes)
            .with_context(|| format!("parsing process file {}", path.display()))?;
        Ok(SpecFile {
            path: path.to_path_buf(),
            bytes,
            doc,
        })
    }
}

impl<T: HasUser> SpecFile<T> {
    pub fn user(&self) -> &User {
        self.doc.user()
    }

    /// Keeps only the `kept` gids of `additionalGids` and replaces the file
    /// atomically; a file from which nothing is removed is not touched.
    pub fn retain_gids(&self, kept: &[u32]) -> Result<()> {
        let rewritten = spec::rewrite_additional_gids(&self.bytes, self.user(), kept);
        if rewritten != self.bytes {
            atomic::replace(&self.path, &rewritten)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn retain_rewrites_only_when_something_goes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let doc = r#"{"process":{"user":{"uid":1,"gid":1,"additionalGids":[1,5]}},"x":1}"#;
        std::fs::write(&p, doc).unwrap();
        let f = SpecFile::load_config(&p).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        f.retain_gids(&[1, 5]).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino, "not rewritten");
        f.retain_gids(&[1]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            doc.replace("[1,5]", "[1]")
        );
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), ino, "replaced");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(&p, "[]").unwrap();
        let err = format!("{:#}", SpecFile::load_process(&p).err().unwrap());
        assert!(err.contains("p.json"), "{err}");
    }
}
