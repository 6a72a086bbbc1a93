//! Where the declared groups D of a container come from, most exact first
//! (see DESIGN.md, "Where D comes from"):
//!
//! 1. containerd's record of the CRI request (exact; no image file is read);
//! 2. otherwise the image groups recomputed from the rootfs, to be removed:
//!    a declared gid that the image also grants is then removed as well
//!    (fail closed), and the decision log says so.
//!
//! The sandbox's `config.json` is not a source: containerd ≥ 1.6.18 resets its
//! `additionalGids` to the primary gid.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::caller::Caller;
use crate::containerd;
use crate::groups::{self, Rules};
use crate::lexical::Runtime;
use crate::policy::Allowed;
use crate::rootfs::Rootfs;
use crate::spec::Config;

/// The most the wrapper reads of an image's `/etc/passwd` or `/etc/group`.
pub const IMAGE_FILE_CAP: u64 = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// containerd's `io.cri-containerd.container.metadata` record.
    Containerd,
    /// Image groups recomputed from the container's rootfs.
    Rootfs,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Containerd => "containerd",
            Source::Rootfs => "rootfs",
        })
    }
}

/// What is known of D for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    pub source: Source,
    pub allowed: Allowed,
    /// Why a less exact source was used, for the decision log.
    pub note: Option<String>,
}

/// Finds D for the container about to be created from `config`: from
/// `containerd`'s answer when there is one (None: no containerd to ask),
/// else from the rootfs.
pub fn for_create(
    containerd: Option<containerd::Answer>,
    rootfs: &Rootfs,
    config: &Config,
    caller: Caller,
) -> Result<Declared> {
    let note = match containerd {
        Some(answer) => match answer {
            Ok(Some(groups)) => {
                return Ok(Declared {
                    source: Source::Containerd,
                    allowed: Allowed::Only(groups.into_iter().collect()),
                    note: None,
                });
            }
            Ok(None) => "containerd holds no CRI record for this container".to_string(),
            Err(e) => format!("{e:#}"),
        },
        None => "no containerd socket known (the caller is not containerd's shim, or named none)"
            .to_string(),
    };
    let image = image_groups(rootfs, config, caller)?;
    Ok(Declared {
        source: Source::Rootfs,
        allowed: Allowed::AllBut(image),
        note: Some(format!(
            "{note}; removing the image's groups, including any the pod also declares"
        )),
    })
}

/// The groups the image grants the process user, as the CRI runtime that
/// wrote the spec computed them (both runtimes' rules when the caller is
/// not known): from `/etc/passwd` and `/etc/group` as the kernel resolves
/// them in the rootfs, and, where a runtime's own resolution of either
/// leads elsewhere (see [`crate::lexical`]), from the files it reads too.
fn image_groups(rootfs: &Rootfs, config: &Config, caller: Caller) -> Result<BTreeSet<u32>> {
    let root = rootfs.path()?.display();
    let context = || format!("recomputing image groups from {root}");
    let uid = config.user.uid;
    let read = |file: &str| rootfs.read(file, IMAGE_FILE_CAP).with_context(context);
    let (passwd, group) = (read("/etc/passwd")?, read("/etc/group")?);
    let rules = match caller {
        Caller::Containerd => Rules::Containerd,
        Caller::Crio => Rules::Crio,
        Caller::Unknown => Rules::Both,
    };
    let mut out = groups::image_groups(passwd.as_deref(), group.as_deref(), uid, rules)
        .with_context(context)?;
    let runtimes: &[(Runtime, Rules)] = match caller {
        Caller::Containerd => &[(Runtime::Containerd, Rules::Containerd)],
        Caller::Crio => &[(Runtime::Crio, Rules::Crio)],
        Caller::Unknown => &[
            (Runtime::Containerd, Rules::Containerd),
            (Runtime::Crio, Rules::Crio),
        ],
    };
    for &(runtime, rules) in runtimes {
        // A walk that fails here fails the create (fail closed): the
        // emulation refuses what the host would do outside the rootfs, so
        // its error is not proof that the runtime's walk failed too.
        let read_as = |file: &str| {
            rootfs
                .read_as(runtime, file, IMAGE_FILE_CAP)
                .with_context(context)
        };
        let (their_passwd, their_group) = (read_as("/etc/passwd")?, read_as("/etc/group")?);
        if their_passwd.is_none() && their_group.is_none() {
            continue;
        }
        let passwd = their_passwd.unwrap_or_else(|| passwd.clone());
        let group = their_group.unwrap_or_else(|| group.clone());
        out.extend(
            groups::image_groups(passwd.as_deref(), group.as_deref(), uid, rules)
                .with_context(context)?,
        );
    }
    Ok(out)
}

/// The container's rootfs: `root.path`, relative to the bundle unless absolute.
pub fn rootfs_of(bundle: &Path, config: &Config) -> Rootfs {
    Rootfs::new(config.root_path.as_deref().map(|p| bundle.join(p)))
}
