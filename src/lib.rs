//! strict-groups: an OCI runtime wrapper that applies Kubernetes' Strict
//! supplemental groups policy (KEP-3619) to `process.user.additionalGids`,
//! then executes the real runtime with the same arguments.
//!
//! Pure core: [`cli`] (argv scanning), [`policy`] (the decision), [`groups`]
//! (image passwd/group parsing), [`spec`] (reading and rewriting the spec).
//! Shell around it: [`wrapper`] (the flow of one invocation), [`caller`] (who
//! runs us, and whose annotations count), [`declared`] and [`containerd`]
//! (where D comes from), [`rootfs`] (safe reads in an image), [`lexical`]
//! (how containerd and CRI-O resolve an image path), [`namelookup`]
//! (runc's group-name look-up), [`specfile`] (load, retain gids, flush),
//! [`state`] (a running container's bundle), [`atomic`], [`config`], [`log`],
//! [`runtime`].

pub mod atomic;
pub mod caller;
pub mod cli;
pub mod commands;
pub mod config;
pub mod configure;
pub mod containerd;
pub mod declared;
pub mod doctor;
pub mod explain;
pub mod groups;
pub mod grpc;
pub mod hpack;
pub mod lexical;
pub mod log;
pub mod namelookup;
pub mod plan;
pub mod policy;
pub mod record;
pub mod report;
pub mod rootfs;
pub mod runtime;
pub mod runtime_entry;
pub mod spec;
pub mod specfile;
pub mod state;
pub mod wrapper;
