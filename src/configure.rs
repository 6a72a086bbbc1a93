//! `strict-groups configure`: adds or removes the runtime entry in
//! containerd's config (version 2 of containerd 1.6/1.7, k3s/RKE2
//! `config.toml.tmpl`) and CRI-O's drop-in, the way `nvidia-ctk runtime
//! configure` does. Edits go through `toml_edit`, so comments, order and
//! every other setting survive byte for byte; the edit is idempotent; a
//! backup is written before any change; `--dry-run` prints the diff.
//!
//! The pure core ([`add_containerd_entry`], [`remove_containerd_entry`],
//! [`crio_dropin`]) takes text and returns text.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args as ClapArgs, Subcommand};
use toml_edit::{Array, DocumentMut, Item, Table, value};

use crate::atomic;
use crate::runtime_entry::{self, BUILTIN_RUNTIME, RUNC_V2};
pub use crate::runtime_entry::{ANNOTATION_PATTERN, HANDLER};
/// The most `configure` reads of a config file.
const CONFIG_CAP: u64 = 16 << 20;
/// Marks the runc entry that `configure` writes out (and `--remove` takes
/// away again).
const BUILTIN_MARK: &str = "containerd's built-in runc entry, written out by `strict-groups configure`: \
containerd drops it once the config has a runtimes table";
/// Marks the block `configure` manages in a k3s/RKE2 template that is not
/// plain TOML (it holds Go template actions).
const BEGIN: &str = "# BEGIN strict-groups runtime (managed by `strict-groups configure`)";
const END: &str = "# END strict-groups runtime";

#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    target: Target,
}

#[derive(Subcommand)]
enum Target {
    /// containerd 1.6/1.7 config (version 2), or a k3s/RKE2 config.toml.tmpl.
    Containerd {
        /// The config file (k3s: /var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl).
        #[arg(long, default_value = "/etc/containerd/config.toml")]
        config: PathBuf,
        /// The runtime entry to copy and wrap (default: the CRI plugin's
        /// default runtime). For a second wrapped runtime, give it its own
        /// --handler and a --binary that links to strict-groups.
        #[arg(long)]
        wrap: Option<String>,
        /// Also name, in this strict-groups node config, the real runtime
        /// that the wrapped entry runs (its `BinaryName`, e.g.
        /// nvidia-container-runtime): `runtime` for a --binary named
        /// strict-groups, else `[runtimes] <its name>`. With --remove, the
        /// `[runtimes]` key goes. The rest of the file is kept.
        #[arg(long)]
        node_config: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// A CRI-O drop-in file in crio.conf.d.
    Crio {
        /// CRI-O's drop-in directory.
        #[arg(long, default_value = "/etc/crio/crio.conf.d")]
        dropin_dir: PathBuf,
        /// The real runtime's state root, as CRI-O passes it (`--root`).
        #[arg(long, default_value = "/run/runc")]
        runtime_root: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(ClapArgs)]
struct Common {
    /// Path of the strict-groups binary on the node (default: this binary).
    #[arg(long)]
    binary: Option<String>,
    /// The runtime handler name (RuntimeClass handler).
    #[arg(long, default_value = HANDLER)]
    handler: String,
    /// Remove the entry instead of adding it.
    #[arg(long)]
    remove: bool,
    /// Print the change as a unified diff; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write no backup beside the file (install.sh keeps its own).
    #[arg(long)]
    no_backup: bool,
}

impl Common {
    fn binary(&self) -> Result<String> {
        match &self.binary {
            Some(b) => Ok(b.clone()),
            None => Ok(std::fs::read_link("/proc/self/exe")
                .context("finding this binary's path (give --binary)")?
                .display()
                .to_string()),
        }
    }
}

pub fn run(args: &Args) -> i32 {
    match configure(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strict-groups: configure: {e:#}");
            1
        }
    }
}

fn configure(args: &Args) -> Result<()> {
    match &args.target {
        Target::Containerd {
            config,
            wrap,
            node_config,
            common,
        } => {
            // A config that is a symlink is edited where it points (the
            // rename of an atomic replace would turn the link into a file).
            let config = &std::fs::canonicalize(config).unwrap_or_else(|_| config.clone());
            let old = read_or_empty(config)?;
            let is_template = config.extension().is_some_and(|e| e == "tmpl");
            let binary = common.binary()?;
            // The name the handler runs the wrapper by: --binary's, else
            // (taking a handler away) the handler's, as install.sh links it.
            let name = match (&common.binary, common.remove) {
                (None, true) => common.handler.clone(),
                _ => Path::new(&binary)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let real = old
                .as_deref()
                .and_then(|t| wrapped_binary_name(t, &common.handler, wrap.as_deref()));
            // The new text first: a failure leaves both files as they were.
            let new = if common.remove {
                remove_containerd_entry(&old, &common.handler, is_template)
            } else {
                add_containerd_entry(&old, &binary, &common.handler, is_template, wrap.as_deref())
            }
            .with_context(|| format!("editing {}", config.display()))?;
            if let Some(real) = real.as_deref().filter(|_| !common.remove)
                && (real == binary || is_the_wrapper(real))
            {
                bail!(
                    "the runtime entry to wrap already runs strict-groups ({real}); wrap the \
                     entry of the real runtime (--wrap)"
                );
            }
            // What the node config is to say for the handler's name. An
            // entry without a BinaryName runs runc from PATH, as the
            // default `runtime` does: a linked name is given that; the
            // wrapper's own name keeps the `runtime` the file has.
            let default = crate::config::NodeConfig::default().runtime;
            let runs = match (&real, common.remove) {
                _ if name == HANDLER && (common.remove || real.is_none()) => None,
                (_, true) => Some(None),
                (Some(real), false) => Some(Some(real.as_str())),
                (None, false) => Some(Some(default.as_str())),
            };
            // The node config's new text too before either file is written.
            let node = match (node_config, runs) {
                (Some(path), Some(runs)) => {
                    let before = read_or_empty(path)?;
                    let after = set_node_runtime(before.as_deref().unwrap_or(""), &name, runs)
                        .with_context(|| format!("editing the node config {}", path.display()))?;
                    let after = (before.is_some() || !after.is_empty()).then_some(after);
                    Some((path, before, after))
                }
                _ => None,
            };
            let write_node = || match &node {
                Some((path, before, after)) => {
                    apply(path, before.as_deref(), after.as_deref(), common)
                }
                None => Ok(()),
            };
            // An added handler's runtime is named first: without it, the
            // handler would run plain runc (without the GPU hooks, say). A
            // handler gone from containerd's config may still run until
            // containerd restarts: its runtime goes from the node config after.
            if common.remove {
                apply(config, old.as_deref(), new.as_deref(), common)?;
                write_node()?;
            } else {
                write_node()?;
                apply(config, old.as_deref(), new.as_deref(), common)?;
            }
            if let (Some(real), false, None) = (real, common.remove, node_config) {
                let what = if name == HANDLER {
                    format!("runtime = {real:?}")
                } else {
                    format!("[runtimes] {name} = {real:?}")
                };
                println!(
                    "{}: the wrapped runtime runs {real:?}: set {what} in {} so that \
                     strict-groups runs it too (or give --node-config)",
                    config.display(),
                    crate::config::DEFAULT_PATH
                );
            }
            Ok(())
        }
        Target::Crio {
            dropin_dir,
            runtime_root,
            common,
        } => {
            let file = dropin_dir.join(format!("50-{}.conf", common.handler));
            let old = read_or_empty(&file)?;
            let new = if common.remove {
                None
            } else {
                Some(crio_dropin(
                    &common.binary()?,
                    &common.handler,
                    runtime_root,
                ))
            };
            apply(&file, old.as_deref(), new.as_deref(), common)
        }
    }
}

/// The file's text, or None when it does not exist.
fn read_or_empty(path: &Path) -> Result<Option<String>> {
    match atomic::read_capped(path, CONFIG_CAP) {
        Ok(bytes) => {
            Ok(Some(String::from_utf8(bytes).with_context(|| {
                format!("{} is not UTF-8", path.display())
            })?))
        }
        Err(_) if !path.exists() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `new` over `old` (None: no file), with a backup of `old`, or
/// prints the diff. Says what it did.
fn apply(path: &Path, old: Option<&str>, new: Option<&str>, common: &Common) -> Result<()> {
    if old == new {
        println!("{}: already as wanted, nothing to do", path.display());
        return Ok(());
    }
    if common.dry_run {
        let diff = similar::TextDiff::from_lines(old.unwrap_or(""), new.unwrap_or(""));
        let name = path.display().to_string();
        print!(
            "{}",
            diff.unified_diff().context_radius(3).header(&name, &name)
        );
        return Ok(());
    }
    if let Some(old) = old.filter(|_| !common.no_backup) {
        let backup = write_backup(path, old.as_bytes())?;
        println!("{}: backup in {}", path.display(), backup.display());
    }
    match new {
        Some(text) => {
            if old.is_none() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                std::fs::write(path, "").with_context(|| format!("creating {}", path.display()))?;
            }
            atomic::replace(path, text.as_bytes())?;
            println!("{}: updated", path.display());
        }
        None => {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
            println!("{}: removed", path.display());
        }
    }
    Ok(())
}

/// Writes `contents` (the file's text before the change) to a new backup
/// `<file>.<UTC time>[-N].strict-groups.bak` beside it: with the original's
/// mode and owner (a config holding a registry password stays private),
/// complete or absent (written to a temp file, fsynced, then linked into a
/// name that does not exist yet: two runs in the same second never share one).
fn write_backup(path: &Path, contents: &[u8]) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let stamp: String = crate::log::rfc3339_now()
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let named = |suffix: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let tmp = named(&format!(".strict-groups.bak.{}.tmp", std::process::id()));
    let write = || -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        f.set_permissions(meta.permissions())?;
        f.write_all(contents)?;
        f.sync_all()?;
        Ok(())
    };
    let result = write().and_then(|()| {
        for n in 0..1000 {
            let suffix = match n {
                0 => format!(".{stamp}.strict-groups.bak"),
                n => format!(".{stamp}-{n}.strict-groups.bak"),
            };
            let backup = named(&suffix);
            match std::fs::hard_link(&tmp, &backup) {
                Ok(()) => return Ok(backup),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        bail!("no free backup name beside {}", path.display())
    });
    let _ = std::fs::remove_file(&tmp);
    result.with_context(|| format!("writing a backup of {}", path.display()))
}

/// The CRI plugin's name in the config's version (see
/// [`runtime_entry::cri_plugin`]); a config that disables the CRI plugin is
/// refused: an entry there would do nothing.
fn cri_plugin(doc: &DocumentMut, text: &str) -> Result<&'static str> {
    let version = doc.get("version").and_then(Item::as_integer);
    let plugin =
        runtime_entry::cri_plugin(version, text.trim().is_empty()).map_err(|e| anyhow!(e))?;
    let disabled: Vec<&str> = doc
        .get("disabled_plugins")
        .and_then(Item::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if let Some(name) = disabled
        .iter()
        .find(|d| runtime_entry::cri_disabled_names(plugin).contains(d))
    {
        bail!(
            "the CRI plugin is disabled (disabled_plugins holds {name:?}): this containerd serves \
             no Kubernetes pods, so a runtime entry would do nothing; enable CRI first"
        );
    }
    Ok(plugin)
}

/// The sub-table `key` of `table`, created (implicit: no header of its own
/// unless it gets keys) when missing.
fn child<'a>(table: &'a mut Table, key: &str, path: &str) -> Result<&'a mut Table> {
    let item = table.entry(key).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    item.as_table_mut()
        .ok_or_else(|| anyhow!("{path}.{key} is not a table"))
}

/// Adds (or completes) the runtime entry; None never (the file is kept).
///
/// The entry is a copy of the runtime that serves the node's pods today (the
/// CRI plugin's `default_runtime_name`, `runc` unless set): its whole table
/// (options such as `SystemdCgroup` and `Root`, `base_runtime_spec`,
/// `privileged_without_host_devices`, `cni_conf_dir`, ...), as `nvidia-ctk
/// runtime configure` copies it, with `BinaryName` pointing at strict-groups
/// and the policy annotation passed. When the config has no entry for
/// containerd's built-in `runc`, one is written first: containerd keeps its
/// built-in entry only while the config has no `runtimes` table, and a
/// default runtime that names nothing fails the CRI plugin.
pub fn add_containerd_entry(
    old: &Option<String>,
    binary: &str,
    handler: &str,
    is_template: bool,
    wrap: Option<&str>,
) -> Result<Option<String>> {
    let text = old.as_deref().unwrap_or("");
    if is_template && (text.contains("{{") || text.parse::<DocumentMut>().is_err()) {
        if let Some(name) = wrap {
            // k3s and RKE2 make their runtime entries (nvidia's too) when
            // they start: there is no table here to copy.
            bail!(
                "--wrap {name}: a template with Go actions holds no runtime entry to copy; \
                 k3s and RKE2 make theirs when they start"
            );
        }
        return Ok(Some(add_template_block(text, binary, handler)));
    }
    let mut doc: DocumentMut = text.parse().context("not valid TOML")?;
    let plugin = cri_plugin(&doc, text)?;
    if text.trim().is_empty() {
        doc.insert("version", value(2));
    }
    let plugins = child(doc.as_table_mut(), "plugins", "")?;
    let cri = child(plugins, plugin, "plugins")?;
    let containerd = child(cri, "containerd", plugin)?;
    let default = containerd
        .get("default_runtime_name")
        .and_then(Item::as_str)
        .unwrap_or(BUILTIN_RUNTIME)
        .to_string();
    let runtimes = child(containerd, "runtimes", "containerd")?;
    if default == BUILTIN_RUNTIME && !runtimes.contains_key(BUILTIN_RUNTIME) {
        let mut runc = Table::new();
        runc.decor_mut().set_prefix(format!("\n# {BUILTIN_MARK}\n"));
        runc.insert("runtime_type", value(RUNC_V2));
        runtimes.insert(BUILTIN_RUNTIME, Item::Table(runc));
    }
    let source = wrapped_entry(runtimes, &default, handler, wrap)?
        .map(copy_of)
        .unwrap_or_default();
    let entry = child(runtimes, handler, "runtimes")?;
    entry.set_implicit(false);
    for (key, item) in source.iter().filter(|(k, _)| k != "options") {
        if !entry.contains_key(key) && key != "pod_annotations" {
            entry.insert(key, item.clone());
        }
    }
    if entry.get("runtime_type").and_then(Item::as_str) != Some(RUNC_V2) {
        entry.insert("runtime_type", value(RUNC_V2));
    }
    match entry
        .get_mut("pod_annotations")
        .and_then(|a| a.as_array_mut())
    {
        Some(list) => {
            if !runtime_entry::passes_policy(list.iter().filter_map(|v| v.as_str())) {
                list.push(ANNOTATION_PATTERN);
            }
        }
        None => {
            let mut list = Array::new();
            list.push(ANNOTATION_PATTERN);
            entry.insert("pod_annotations", value(list));
        }
    }
    let options = child(entry, "options", handler)?;
    options.set_implicit(false);
    let source_options = source
        .iter()
        .find(|(k, _)| k == "options")
        .and_then(|(_, item)| item.as_table_like())
        .map(copy_of)
        .unwrap_or_default();
    for (k, v) in source_options {
        if !options.contains_key(&k) && k != "BinaryName" {
            options.insert(&k, v);
        }
    }
    if options.get("BinaryName").and_then(Item::as_str) != Some(binary) {
        options.insert("BinaryName", value(binary));
    }
    Ok(Some(doc.to_string()))
}

/// The keys and values of a table, detached from the document.
fn copy_of(table: &dyn toml_edit::TableLike) -> Vec<(String, Item)> {
    table
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The runtime entry whose table the entry of `handler` copies: `wrap`, which
/// must be there and a runc shim (the wrapper runs an OCI runtime in its
/// place, not a VM's shim); else the serving one (`default`) when it is a
/// runc shim other than `handler`, else containerd's `runc` when there is
/// one.
fn wrapped_entry<'a>(
    runtimes: &'a dyn toml_edit::TableLike,
    default: &'a str,
    handler: &str,
    wrap: Option<&'a str>,
) -> Result<Option<&'a dyn toml_edit::TableLike>> {
    let runc_shim = |table: &dyn toml_edit::TableLike| {
        let runtime_type = table.get("runtime_type").and_then(Item::as_str);
        runtime_type.is_none_or(|t| t == RUNC_V2)
    };
    if let Some(name) = wrap {
        let Some(table) = runtimes.get(name).and_then(Item::as_table_like) else {
            bail!("there is no runtime entry {name:?} to wrap");
        };
        if !runc_shim(table) || name == handler {
            bail!(
                "runtime entry {name:?} is not a runc shim ({RUNC_V2}) that strict-groups can wrap"
            );
        }
        return Ok(Some(table));
    }
    // Another handler of the wrapper's (a linked one made the default) is
    // not what the wrapper runs either.
    let runs_the_wrapper = |table: &dyn toml_edit::TableLike| {
        let binary = table.get("options").and_then(|o| o.get("BinaryName"));
        binary.and_then(Item::as_str).is_some_and(is_the_wrapper)
    };
    Ok([default, BUILTIN_RUNTIME]
        .into_iter()
        .filter(|name| *name != handler)
        .filter_map(|name| runtimes.get(name)?.as_table_like())
        .find(|table| runc_shim(*table) && !runs_the_wrapper(*table)))
}

/// Is `binary` the wrapper, by the name it or a link to it has
/// (`strict-groups`, `strict-groups-nvidia`, ...)?
fn is_the_wrapper(binary: &str) -> bool {
    Path::new(binary)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(HANDLER))
}

/// The real runtime that the entry of `handler` wraps (see
/// [`add_containerd_entry`]: `wrap`, else the default one) runs: its
/// `options.BinaryName` when it is set (nvidia-container-runtime on GPU
/// nodes), which the node config must then name for strict-groups to run it.
pub fn wrapped_binary_name(text: &str, handler: &str, wrap: Option<&str>) -> Option<String> {
    let doc: DocumentMut = text.parse().ok()?;
    let plugin = cri_plugin(&doc, text).ok()?;
    let containerd = doc.get("plugins")?.get(plugin)?.get("containerd")?;
    let default = containerd
        .get("default_runtime_name")
        .and_then(Item::as_str)
        .unwrap_or(BUILTIN_RUNTIME);
    let runtimes = containerd.get("runtimes")?.as_table_like()?;
    let name = wrapped_entry(runtimes, default, handler, wrap)
        .ok()??
        .get("options")?
        .get("BinaryName")?
        .as_str()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Removes the runtime entry (and the template block); the rest is kept.
pub fn remove_containerd_entry(
    old: &Option<String>,
    handler: &str,
    is_template: bool,
) -> Result<Option<String>> {
    let Some(text) = old else {
        return Ok(None);
    };
    if is_template && text.contains(BEGIN) {
        return Ok(Some(remove_template_block(text)));
    }
    if is_template && text.parse::<DocumentMut>().is_err() {
        return Ok(Some(text.clone()));
    }
    let mut doc: DocumentMut = text.parse().context("not valid TOML")?;
    let plugin = cri_plugin(&doc, text)?;
    let runtimes = doc
        .get_mut("plugins")
        .and_then(|p| p.get_mut(plugin))
        .and_then(|c| c.get_mut("containerd"))
        .and_then(|c| c.get_mut("runtimes"))
        .and_then(Item::as_table_like_mut);
    match runtimes {
        Some(r) if r.contains_key(handler) => {
            r.remove(handler);
            // The built-in runc entry that `configure` wrote out goes too,
            // but only as it was written and when no other runtime came
            // since: containerd's built-in one then takes its place again.
            let ours = r
                .get(BUILTIN_RUNTIME)
                .and_then(Item::as_table)
                .is_some_and(|t| {
                    let marked = t
                        .decor()
                        .prefix()
                        .and_then(|p| p.as_str())
                        .is_some_and(|p| p.contains(BUILTIN_MARK));
                    let untouched = t.len() == 1
                        && t.get("runtime_type").and_then(Item::as_str) == Some(RUNC_V2);
                    marked && untouched
                });
            if ours && r.len() == 1 {
                r.remove(BUILTIN_RUNTIME);
            }
            Ok(Some(doc.to_string()))
        }
        _ => Ok(Some(text.clone())),
    }
}

/// The node config's text with `real` as the real runtime of the wrapper run
/// by the name `name`: `runtime` for the wrapper's own name, else the key
/// `name` of `[runtimes]`. `real` None takes `[runtimes] name` out (and
/// leaves `runtime` as it is). Comments and everything else are kept; the
/// result must load as a node config, or nothing is written.
pub fn set_node_runtime(text: &str, name: &str, real: Option<&str>) -> Result<String> {
    let mut doc: DocumentMut = text.parse().context("not valid TOML")?;
    if name.is_empty() || name.contains('/') {
        bail!("no binary name to set a runtime for ({name:?})");
    }
    // A new value keeps the comment and spacing around the old one.
    let set = |table: &mut dyn toml_edit::TableLike, key: &str, real: &str| match table
        .get_mut(key)
        .and_then(Item::as_value_mut)
    {
        Some(old) => {
            let decor = old.decor().clone();
            *old = toml_edit::Value::from(real);
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(key, value(real));
        }
    };
    match real {
        Some(real) if name == HANDLER => set(doc.as_table_mut(), "runtime", real),
        Some(real) => {
            if !doc.contains_key("runtimes") {
                doc["runtimes"] = Item::Table(Table::new());
            }
            let runtimes = doc["runtimes"]
                .as_table_like_mut()
                .ok_or_else(|| anyhow!("runtimes is not a table"))?;
            set(runtimes, name, real);
        }
        None => {
            let runtimes = doc.get_mut("runtimes").and_then(Item::as_table_like_mut);
            if let Some(runtimes) = runtimes
                && runtimes.remove(name).is_some()
                && runtimes.is_empty()
            {
                // The table this added goes with its last key.
                doc.remove("runtimes");
            }
        }
    }
    let out = doc.to_string();
    crate::config::NodeConfig::parse_checked(&out, Path::new("as edited"))
        .context("the result would not load")?;
    Ok(out)
}

/// The entry as text, for templates that are not plain TOML.
///
/// k3s and RKE2 render the template with their own values: runc gets
/// `SystemdCgroup = {{ .SystemdCgroup }}` there (and no `Root`), so the entry
/// takes the same expression and runs with the same cgroup driver as runc.
fn template_block(binary: &str, handler: &str) -> String {
    let base = format!(r#"plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}"#);
    format!(
        "{BEGIN}\n[{base}]\n  runtime_type = \"{RUNC_V2}\"\n  pod_annotations = [\"{ANNOTATION_PATTERN}\"]\n[{base}.options]\n  BinaryName = {}\n  SystemdCgroup = {{{{ .SystemdCgroup }}}}\n{END}\n",
        toml_edit::Value::from(binary)
    )
}

fn add_template_block(text: &str, binary: &str, handler: &str) -> String {
    let base = remove_template_block(text);
    let mut out = base;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&template_block(binary, handler));
    out
}

fn remove_template_block(text: &str) -> String {
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        return text.to_string();
    };
    let end = end + END.len();
    let end = if text[end..].starts_with('\n') {
        end + 1
    } else {
        end
    };
    // The blank line that add_template_block put before the block.
    let start = if text[..start].ends_with("\n\n") {
        start - 1
    } else {
        start
    };
    format!("{}{}", &text[..start], &text[end..])
}

/// CRI-O's drop-in for the runtime handler.
pub fn crio_dropin(binary: &str, handler: &str, runtime_root: &str) -> String {
    format!(
        "# strict-groups: KEP-3619 Strict supplementary groups (written by `strict-groups configure crio`).\n\
         # Pods select it with a RuntimeClass whose handler is {handler:?}.\n\
         [crio.runtime.runtimes.{handler}]\n\
         runtime_path = {}\n\
         runtime_type = \"oci\"\n\
         runtime_root = {}\n",
        toml_edit::Value::from(binary),
        toml_edit::Value::from(runtime_root)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(text: &str) -> String {
        add_containerd_entry(
            &Some(text.to_string()),
            "/usr/local/bin/strict-groups",
            HANDLER,
            false,
            None,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn empty_file_gets_version_2_and_the_entry() {
        let out = add("");
        let doc: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(doc["version"].as_integer(), Some(2));
        let entry = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][HANDLER];
        assert_eq!(entry["runtime_type"].as_str(), Some(RUNC_V2));
        assert_eq!(
            entry["options"]["BinaryName"].as_str(),
            Some("/usr/local/bin/strict-groups")
        );
        assert_eq!(add(&out), out, "idempotent");
    }

    #[test]
    fn runc_options_are_copied_and_annotations_merged() {
        let text = "version = 2\n# keep me\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.strict-groups]\n  pod_annotations = [\"example.com/x\"]\n";
        let out = add(text);
        assert!(out.starts_with("version = 2\n# keep me\n"), "{out}");
        let doc: toml::Table = toml::from_str(&out).unwrap();
        let entry = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][HANDLER];
        assert_eq!(entry["options"]["SystemdCgroup"].as_bool(), Some(true));
        let annotations: Vec<&str> = entry["pod_annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(annotations, ["example.com/x", ANNOTATION_PATTERN]);
    }

    #[test]
    fn version_1_uses_the_short_plugin_name_and_version_3_the_runtime_plugin() {
        let out = add("[plugins.cri]\n  sandbox_image = \"pause\"\n");
        assert!(
            out.contains("[plugins.cri.containerd.runtimes.strict-groups]"),
            "{out}"
        );
        let out = add("version = 3\n");
        assert!(
            out.contains(
                "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.strict-groups]"
            ),
            "{out}"
        );
        let err = add_containerd_entry(&Some("version = 4\n".into()), "/b", HANDLER, false, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown containerd config version 4"), "{err}");
    }

    #[test]
    fn template_with_go_actions_gets_a_block_that_comes_off_again() {
        let text = "{{ template \"base\" . }}\n";
        let out = add_containerd_entry(
            &Some(text.into()),
            "/usr/local/bin/strict-groups",
            HANDLER,
            true,
            None,
        )
        .unwrap()
        .unwrap();
        assert!(out.starts_with(text) && out.contains(BEGIN), "{out}");
        assert!(
            out.contains("SystemdCgroup = {{ .SystemdCgroup }}"),
            "{out}"
        );
        let again = add_containerd_entry(
            &Some(out.clone()),
            "/usr/local/bin/strict-groups",
            HANDLER,
            true,
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(again, out, "idempotent");
        let removed = remove_containerd_entry(&Some(out), HANDLER, true)
            .unwrap()
            .unwrap();
        assert_eq!(removed, text);
    }

    /// The snippet the README shows is what `configure` writes.
    #[test]
    fn documented_snippet_is_what_configure_writes() {
        let written: toml::Table = toml::from_str(&add("")).unwrap();
        let documented: toml::Table =
            toml::from_str(include_str!("../config/containerd-runtime.toml")).unwrap();
        let entry = |t: &toml::Table| {
            t["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][HANDLER].clone()
        };
        assert_eq!(entry(&written), entry(&documented));
    }

    #[test]
    fn remove_keeps_a_written_out_runc_entry_that_is_needed_or_edited() {
        let added = add("version = 2\n");
        let removed = remove_containerd_entry(&Some(added.clone()), HANDLER, false)
            .unwrap()
            .unwrap();
        assert!(!removed.contains("runtimes.runc"), "{removed}");
        // The operator added a runtime since: runc stays, or the CRI plugin
        // would lose its default runtime.
        let more = format!(
            "{added}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata]\n  runtime_type = \"io.containerd.kata.v2\"\n"
        );
        let removed = remove_containerd_entry(&Some(more), HANDLER, false)
            .unwrap()
            .unwrap();
        assert!(removed.contains("runtimes.runc]"), "{removed}");
        // The operator edited the runc entry: it stays.
        let edited = added.replace(
            "runtime_type = \"io.containerd.runc.v2\"\n",
            "runtime_type = \"io.containerd.runc.v2\"\nprivileged_without_host_devices = true\n",
        );
        let removed = remove_containerd_entry(&Some(edited), HANDLER, false)
            .unwrap()
            .unwrap();
        assert!(
            removed.contains("privileged_without_host_devices"),
            "{removed}"
        );
    }

    #[test]
    fn a_second_runtime_is_wrapped_under_its_own_handler() {
        let text = include_str!("../tests/configs/comments-and-runtimes.toml");
        let out = add_containerd_entry(
            &Some(text.into()),
            "/usr/local/bin/strict-groups-nvidia",
            "strict-groups-nvidia",
            false,
            Some("nvidia"),
        )
        .unwrap()
        .unwrap();
        let doc: toml::Table = toml::from_str(&out).unwrap();
        let e = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["strict-groups-nvidia"];
        assert_eq!(e["privileged_without_host_devices"].as_bool(), Some(false));
        assert_eq!(e["options"]["SystemdCgroup"].as_bool(), Some(true));
        assert_eq!(
            e["options"]["BinaryName"].as_str(),
            Some("/usr/local/bin/strict-groups-nvidia")
        );
        assert_eq!(
            wrapped_binary_name(text, "strict-groups-nvidia", Some("nvidia")).as_deref(),
            Some("/usr/bin/nvidia-container-runtime")
        );
        assert_eq!(wrapped_binary_name(text, HANDLER, None), None);
        let err = add_containerd_entry(&Some(text.into()), "/b", "x", false, Some("none"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no runtime entry \"none\""), "{err}");
        // A VM's shim is no runc to wrap: refused, not replaced by runc.
        let err = add_containerd_entry(&Some(text.into()), "/b", "x", false, Some("kata"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"kata\" is not a runc shim"), "{err}");
        assert_eq!(wrapped_binary_name(text, "x", Some("kata")), None);
        // The default entry being the handler's own: runc's is the one wrapped.
        let own_default = add_containerd_entry(&Some(text.into()), "/b", HANDLER, false, None)
            .unwrap()
            .unwrap()
            .replace(
                "default_runtime_name = \"runc\"",
                "default_runtime_name = \"strict-groups\"",
            );
        assert!(own_default.parse::<DocumentMut>().is_ok());
        // A linked handler of the wrapper's made the default: not wrapped
        // again, runc's entry is.
        let linked_default = out.replace(
            "default_runtime_name = \"runc\"",
            "default_runtime_name = \"strict-groups-nvidia\"",
        );
        assert!(linked_default.contains("\"strict-groups-nvidia\""));
        assert_eq!(wrapped_binary_name(&linked_default, HANDLER, None), None);
        assert!(add_containerd_entry(&Some(linked_default), "/b", HANDLER, false, None).is_ok());
        assert_eq!(wrapped_binary_name(&own_default, HANDLER, None), None);
    }

    #[test]
    fn the_node_config_names_the_real_runtime_and_keeps_the_rest() {
        let shipped = "# the node config\nruntime = \"runc\"  # real runtime\nmode = \"enforce\"\n";
        let gpu = "/usr/bin/nvidia-container-runtime";
        let added = set_node_runtime(shipped, "strict-groups-nvidia", Some(gpu)).unwrap();
        assert!(added.starts_with(shipped), "{added}");
        let loaded = crate::config::NodeConfig::parse(&added).unwrap().config;
        assert_eq!(loaded.runtime_for("strict-groups-nvidia"), gpu);
        assert_eq!(loaded.runtime_for("strict-groups"), "runc");
        // Again: the same text; another value replaces it; None takes it out.
        assert_eq!(
            set_node_runtime(&added, "strict-groups-nvidia", Some(gpu)).unwrap(),
            added
        );
        let other = set_node_runtime(&added, "strict-groups-nvidia", Some("/opt/x")).unwrap();
        let loaded = crate::config::NodeConfig::parse(&other).unwrap().config;
        assert_eq!(loaded.runtime_for("strict-groups-nvidia"), "/opt/x");
        let removed = set_node_runtime(&added, "strict-groups-nvidia", None).unwrap();
        assert_eq!(
            removed, shipped,
            "the [runtimes] it added goes with its key"
        );
        assert_eq!(
            set_node_runtime(shipped, "strict-groups-x", None).unwrap(),
            shipped
        );
        // The wrapper's own name: `runtime`, in place.
        let own = set_node_runtime(shipped, HANDLER, Some(gpu)).unwrap();
        assert_eq!(own, shipped.replace("\"runc\"", &format!("{gpu:?}")));
        // A file it cannot edit, or a result that would not load: an error.
        assert!(set_node_runtime("runtimes = 3\n", "strict-groups-x", Some(gpu)).is_err());
        assert!(set_node_runtime("runtime = \n", "strict-groups-x", Some(gpu)).is_err());
        assert!(set_node_runtime("mode = \"bogus\"\n", "strict-groups-x", Some(gpu)).is_err());
        assert!(set_node_runtime(shipped, "strict-groups-x", Some("")).is_err());
        assert!(set_node_runtime(shipped, "", Some(gpu)).is_err());
    }

    #[test]
    fn wrap_refuses_a_template_it_cannot_copy_from() {
        let template = "{{ template \"base\" . }}\n".to_string();
        let err = add_containerd_entry(
            &Some(template.clone()),
            "/usr/local/bin/strict-groups-nvidia",
            "strict-groups-nvidia",
            true,
            Some("nvidia"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("--wrap nvidia"), "{err:#}");
        assert!(add_containerd_entry(&Some(template), "/b", HANDLER, true, None).is_ok());
    }

    #[test]
    fn crio_dropin_parses() {
        let d = crio_dropin("/usr/bin/strict-groups", HANDLER, "/run/runc");
        let doc: toml::Table = toml::from_str(&d).unwrap();
        assert_eq!(
            doc["crio"]["runtime"]["runtimes"][HANDLER]["runtime_path"].as_str(),
            Some("/usr/bin/strict-groups")
        );
    }
}
