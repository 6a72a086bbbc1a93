//! A tolerant scanner of an OCI runtime's command line (runc, crun, youki).
//!
//! The wrapper never rejects an argument: the real runtime receives the whole
//! argv unchanged and decides what is valid. This module only finds what the
//! wrapper needs: the subcommand, the global `--root`, `--log` and
//! `--log-format`, and for the commands it acts on `--bundle`, `--process`,
//! crun's `--config`, exec's `--additional-gids` and the container id.
//!
//! Flags follow Go's `flag` package (which runc uses through urfave/cli):
//! `-name` and `--name` are the same, a value is given as `--name value` or
//! `--name=value`, and flag parsing stops at the first positional argument
//! (for exec, what follows the id is the command to run) or at `--`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Commands the wrapper acts on. Every other command is passed through
/// without reading any file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `create`, `run`, `restore`: decide on the bundle's `config.json`.
    Create,
    /// `exec`: apply the container's decision to the exec's process.
    Exec,
    /// Anything else.
    Passthrough,
}

/// Subcommands of runc, crun and youki. The subcommand is the first
/// positional argument that is one of these; any positional before it is
/// taken for the value of a global flag this scanner does not know.
const COMMANDS: &[&str] = &[
    "checkpoint",
    "create",
    "delete",
    "events",
    "exec",
    "features",
    "help",
    "h",
    "init",
    "kill",
    "list",
    "ps",
    "pause",
    "restore",
    "resume",
    "run",
    "spec",
    "start",
    "state",
    "update",
    "info",
    "mount",
    "umount",
];

/// Flags (of any command, without leading dashes) that take a value when
/// given without `=`. A flag not listed here is taken for a boolean.
const VALUE_FLAGS: &[&str] = &[
    // global: runc, crun, youki
    "root",
    "log",
    "log-format",
    "log-level",
    "criu",
    "rootless",
    "cgroup-manager",
    // create, run, restore
    "bundle",
    "b",
    "console-socket",
    "pid-file",
    "preserve-fds",
    "config",
    "f",
    "image-path",
    "work-path",
    "parent-path",
    "manage-cgroups-mode",
    "empty-ns",
    "lsm-profile",
    "lsm-mount-context",
    "status-fd",
    "pidfd-socket",
    // exec
    "cwd",
    "env",
    "e",
    "user",
    "u",
    "additional-gids",
    "g",
    "process",
    "p",
    "process-label",
    "apparmor",
    "cap",
    "c",
    "cgroup",
];

/// What the wrapper found in the runtime's argv (without argv\[0\]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    pub command: Option<String>,
    pub root: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub log_format: Option<String>,
    pub bundle: Option<PathBuf>,
    pub process: Option<PathBuf>,
    /// crun's `create --config FILE`: a spec file other than `config.json`.
    pub config: Option<PathBuf>,
    /// exec's `--additional-gids`/`-g`, each as given.
    pub additional_gids: Vec<String>,
    /// exec's `--user`/`-u` (`uid[:gid]`).
    pub user: Option<String>,
    pub container_id: Option<String>,
    /// Why a create's command line can be read more than one way (a flag's
    /// value that looks like a flag, more than one argument): the CRI
    /// runtimes never write one, and the wrapper refuses it rather than
    /// decide on another spec than the runtime's.
    pub ambiguous: Option<String>,
}

impl Invocation {
    pub fn action(&self) -> Action {
        match self.command.as_deref() {
            Some("create" | "run" | "restore") => Action::Create,
            Some("exec") => Action::Exec,
            _ => Action::Passthrough,
        }
    }

    /// The spec file of a create: crun's `--config`, else `config.json` in
    /// the bundle (`--bundle`, else the current directory), as the runtime
    /// resolves them.
    pub fn spec_path(&self) -> PathBuf {
        match &self.config {
            Some(config) => self.bundle_dir().join(config),
            None => self.bundle_dir().join("config.json"),
        }
    }

    pub fn bundle_dir(&self) -> PathBuf {
        self.bundle.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn container(&self) -> &str {
        self.container_id.as_deref().unwrap_or("")
    }

    /// Where the runtime's log lines go.
    pub fn log_target(&self) -> crate::log::Target {
        crate::log::Target::new(
            self.log.clone(),
            crate::log::Format::from_flag(self.log_format.as_deref()),
        )
    }
}

/// Splits `-name`, `--name` or `--name=value` into (name, inline value).
fn flag(arg: &OsStr) -> Option<(&[u8], Option<&[u8]>)> {
    let bytes = arg.as_bytes();
    let body = bytes
        .strip_prefix(b"--")
        .or_else(|| bytes.strip_prefix(b"-"))?;
    if body.is_empty() {
        return None;
    }
    Some(match body.iter().position(|&b| b == b'=') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    })
}

/// Is `name` a flag of `create`, `run` or `restore` as runc 1.1/1.2 define
/// them (urfave/cli moves a command's own flags ahead of its arguments)?
/// With crun's `--config`/`-f` and the `--help` every runc command has.
fn is_flag_of(command: &str, name: &[u8]) -> bool {
    const CREATE: &[&str] = &[
        "bundle",
        "b",
        "console-socket",
        "pid-file",
        "no-pivot",
        "no-new-keyring",
        "preserve-fds",
        "pidfd-socket",
        "config",
        "f",
        "help",
        "h",
    ];
    const RUN_ALSO: &[&str] = &["detach", "d", "keep", "no-subreaper"];
    const RESTORE: &[&str] = &[
        "console-socket",
        "image-path",
        "work-path",
        "tcp-established",
        "ext-unix-sk",
        "shell-job",
        "file-locks",
        "manage-cgroups-mode",
        "bundle",
        "b",
        "detach",
        "d",
        "pid-file",
        "no-subreaper",
        "no-pivot",
        "empty-ns",
        "auto-dedup",
        "lazy-pages",
        "lsm-profile",
        "lsm-mount-context",
        "help",
        "h",
    ];
    let lists: &[&[&str]] = match command {
        "create" => &[CREATE],
        "run" => &[CREATE, RUN_ALSO],
        "restore" => &[RESTORE],
        _ => &[],
    };
    lists.iter().any(|l| l.iter().any(|f| f.as_bytes() == name))
}

/// Scans the arguments that follow argv\[0\].
pub fn scan(args: &[OsString]) -> Invocation {
    let mut inv = Invocation::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg.as_bytes() == b"--" {
            // Go's flag stops here; urfave/cli takes the next argument for
            // the command.
            if let Some(next) = args.get(i).map(|a| a.to_string_lossy())
                && COMMANDS.contains(&next.as_ref())
            {
                inv.command = Some(next.into_owned());
                i += 1;
            }
            break;
        }
        if let Some((name, inline)) = flag(arg) {
            if let Some(value) = flag_value(name, inline, args, &mut i) {
                record(&mut inv, name, value, false);
            }
            continue;
        }
        let name = arg.to_string_lossy();
        if COMMANDS.contains(&name.as_ref()) {
            inv.command = Some(name.into_owned());
            break;
        }
    }
    let Some(command) = inv.command.clone() else {
        return inv;
    };
    // runc's CLI (urfave/cli) moves a command's flags ahead of its
    // arguments for every command but `exec` and `ps`: `create ID --bundle B`
    // is `create --bundle B ID`.
    let rest = match inv.action() {
        Action::Create => reorder(&args[i..], &command),
        _ => args[i..].to_vec(),
    };
    scan_command(&mut inv, &rest);
    inv
}

/// The value of flag `name` (inline, or the next argument when it takes one).
fn flag_value(
    name: &[u8],
    inline: Option<&[u8]>,
    args: &[OsString],
    i: &mut usize,
) -> Option<OsString> {
    match inline {
        Some(v) => Some(OsStr::from_bytes(v).to_os_string()),
        None if VALUE_FLAGS.iter().any(|f| f.as_bytes() == name) => {
            *i += 1;
            args.get(*i - 1).cloned()
        }
        None => None,
    }
}

/// A command's flags, then its container id (the first positional). For a
/// create, a flag value that starts with `-` or a second argument makes the
/// line ambiguous.
fn scan_command(inv: &mut Invocation, args: &[OsString]) {
    let create = inv.action() == Action::Create;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg.as_bytes() == b"--" {
            // What follows is positional.
            inv.container_id = args.get(i).map(|a| a.to_string_lossy().into_owned());
            if create && args.len() > i + 1 {
                inv.ambiguous = Some("more than one argument after the flags".into());
            }
            return;
        }
        if let Some((name, inline)) = flag(arg) {
            let at = i;
            if let Some(value) = flag_value(name, inline, args, &mut i) {
                if create && inline.is_none() && i > at && value.as_bytes().starts_with(b"-") {
                    inv.ambiguous = Some(format!(
                        "the value of {} looks like a flag: {}",
                        arg.to_string_lossy(),
                        value.to_string_lossy()
                    ));
                }
                record(inv, name, value, true);
            }
            continue;
        }
        // First positional of the command: the container id.
        inv.container_id = Some(arg.to_string_lossy().into_owned());
        if create && args.len() > i {
            inv.ambiguous = Some(format!(
                "more than one argument after the flags: {}",
                args[i..]
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        return;
    }
}

/// urfave/cli's `reorderArgs` (v1.22): each known flag, with the argument
/// after it unless that is a flag too, moves ahead of the other arguments;
/// a `--` ends the moving and stays in front of what follows.
fn reorder(args: &[OsString], command: &str) -> Vec<OsString> {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut may_be_value = false;
    for (i, arg) in args.iter().enumerate() {
        let is_flag = is_command_flag(arg, command);
        if may_be_value && !is_flag {
            may_be_value = false;
            flags.push(arg.clone());
        } else if arg.as_bytes() == b"--" {
            rest.insert(0, arg.clone());
            rest.extend_from_slice(&args[i + 1..]);
            break;
        } else if is_flag {
            flags.push(arg.clone());
            may_be_value = !arg.as_bytes().contains(&b'=');
        } else {
            rest.push(arg.clone());
        }
    }
    flags.extend(rest);
    flags
}

/// urfave/cli's `argIsFlag`: `-name`, `--name` or `--name=value` of a flag
/// the command has.
fn is_command_flag(arg: &OsStr, command: &str) -> bool {
    let bytes = arg.as_bytes();
    if bytes == b"-" || bytes == b"--" {
        return false;
    }
    let Some(body) = bytes
        .strip_prefix(b"--")
        .or_else(|| bytes.strip_prefix(b"-"))
    else {
        return false;
    };
    let name = body.split(|&b| b == b'=').next().unwrap_or_default();
    is_flag_of(command, name)
}

fn record(inv: &mut Invocation, name: &[u8], value: OsString, in_command: bool) {
    let path = || Some(PathBuf::from(&value));
    match (in_command, name) {
        (false, b"root") => inv.root = path(),
        (false, b"log") => inv.log = path(),
        (false, b"log-format") => inv.log_format = Some(value.to_string_lossy().into_owned()),
        (true, b"bundle" | b"b") => inv.bundle = path(),
        (true, b"process" | b"p") => inv.process = path(),
        (true, b"config" | b"f") => inv.config = path(),
        (true, b"additional-gids" | b"g") => inv
            .additional_gids
            .push(value.to_string_lossy().into_owned()),
        (true, b"user" | b"u") => inv.user = Some(value.to_string_lossy().into_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan_str(line: &str) -> Invocation {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        scan(&args)
    }

    #[test]
    fn containerd_shim_create() {
        let inv = scan_str(
            "--root /run/containerd/runc/k8s.io --log /b/log.json --log-format json create --bundle /b --pid-file /b/init.pid abc",
        );
        assert_eq!(inv.action(), Action::Create);
        assert_eq!(inv.root, Some("/run/containerd/runc/k8s.io".into()));
        assert_eq!(inv.log, Some("/b/log.json".into()));
        assert_eq!(inv.log_format.as_deref(), Some("json"));
        assert_eq!(inv.bundle, Some("/b".into()));
        assert_eq!(inv.spec_path(), PathBuf::from("/b/config.json"));
        assert_eq!(inv.container_id.as_deref(), Some("abc"));
    }

    #[test]
    fn containerd_shim_exec() {
        let inv = scan_str(
            "--root /r --log /b/log.json --log-format json exec --process /tmp/runc-process1 --detach --pid-file /b/e.pid abc",
        );
        assert_eq!(inv.action(), Action::Exec);
        assert_eq!(inv.process, Some("/tmp/runc-process1".into()));
        assert_eq!(inv.container_id.as_deref(), Some("abc"));
    }

    #[test]
    fn flag_spellings() {
        for line in [
            "create -b /x id",
            "create --bundle=/x id",
            "create -bundle /x id",
            "create -b=/x id",
            "--unknown-bool create --no-pivot --bundle /x id",
            "--unknown=v create --bundle /x id",
            "--log-level debug create --bundle /x id",
        ] {
            let inv = scan_str(line);
            assert_eq!(inv.action(), Action::Create, "{line}");
            assert_eq!(inv.bundle, Some("/x".into()), "{line}");
            assert_eq!(inv.container_id.as_deref(), Some("id"), "{line}");
        }
    }

    #[test]
    fn unknown_global_flag_with_a_value_does_not_hide_the_command() {
        let inv = scan_str("--future-flag somevalue run --bundle /x id");
        assert_eq!(inv.action(), Action::Create);
        assert_eq!(inv.container_id.as_deref(), Some("id"));
    }

    #[test]
    fn exec_command_arguments_are_not_flags() {
        let inv = scan_str("exec -t abc ls -p /etc --process /evil");
        assert_eq!(inv.container_id.as_deref(), Some("abc"));
        assert_eq!(inv.process, None);
        let inv = scan_str("exec -g 5 --additional-gids=6 -u 1:1 abc id");
        assert_eq!(inv.additional_gids, vec!["5", "6"]);
    }

    #[test]
    fn passthrough_commands() {
        for line in [
            "--root /r start abc",
            "state abc",
            "kill --all abc 9",
            "delete --force abc",
            "--version",
            "-v",
            "--help",
            "features",
            "",
            "ps abc",
        ] {
            assert_eq!(scan_str(line).action(), Action::Passthrough, "{line}");
        }
        // A global flag's value is never mistaken for the command.
        assert_eq!(
            scan_str("--root create state abc").action(),
            Action::Passthrough
        );
        assert_eq!(
            scan_str("--log create delete abc").action(),
            Action::Passthrough
        );
    }

    #[test]
    fn flags_after_the_id_of_create_run_restore_are_moved_as_runc_does() {
        for line in [
            "create abc --bundle /x",
            "--root /r create abc -b=/x --pid-file /p",
            "run abc --detach --bundle /x",
            "restore abc --image-path /img --bundle /x",
            "create --pid-file /p abc --bundle /x --no-pivot",
        ] {
            let inv = scan_str(line);
            assert_eq!(inv.bundle, Some("/x".into()), "{line}");
            assert_eq!(inv.container_id.as_deref(), Some("abc"), "{line}");
        }
        // A boolean flag takes the next argument along (runc then refuses
        // the extra arguments); `--` ends the moving.
        let inv = scan_str("create --no-pivot abc --bundle /x");
        assert_eq!(
            (inv.container_id.as_deref(), inv.bundle),
            (Some("abc"), None)
        );
        let inv = scan_str("create -- abc --bundle /x");
        assert_eq!(
            (inv.container_id.as_deref(), inv.bundle),
            (Some("abc"), None)
        );
        // exec is not reordered: what follows the id is the command.
        let inv = scan_str("exec abc --process /evil");
        assert_eq!(
            (inv.container_id.as_deref(), inv.process),
            (Some("abc"), None)
        );
    }

    #[test]
    fn relative_bundle_and_crun_config() {
        let inv = scan_str("create --config other.json id");
        assert_eq!(inv.spec_path(), PathBuf::from("./other.json"));
        let inv = scan_str("restore --image-path /img -b b id");
        assert_eq!(inv.spec_path(), PathBuf::from("b/config.json"));
    }

    proptest! {
        #[test]
        fn never_panics(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..12)) {
            let args: Vec<OsString> = args.into_iter().map(|a| OsStr::from_bytes(&a).to_os_string()).collect();
            let _ = scan(&args);
        }
    }
}
