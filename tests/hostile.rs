//! Hostile images, malformed input, crashes and load, over real runc.
//!
//! Every image is written by someone we do not trust. Each case starts a real
//! container through the wrapper (D from the rootfs, the path where image
//! files are read) under a deadline, and checks: no hang, never a host file,
//! and either a tolerant parse (the container runs with the expected groups)
//! or a refusal with a clear error and nothing changed.

mod common;

use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::containerd::{PrivateContainerd, cri_metadata};
use common::*;
use serde_json::{Value, json};

/// A host file that grants alice 50000: if the wrapper ever read it, 50000
/// would be removed. Its path is unique to the test run.
fn host_group_file() -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new()
        .prefix("sg-host-group")
        .tempfile_in("/tmp")
        .unwrap();
    std::fs::write(f.path(), "onhost:x:50000:alice\n").unwrap();
    f
}

enum Expect {
    /// The container runs and `id -G` prints this.
    Runs(&'static str),
    /// The container is refused with an error containing this.
    Refused(&'static str),
}

/// Shapes an image: `plant(rootfs, host_file)`.
type Plant = Box<dyn Fn(&Path, &Path)>;

/// One image case: how to plant the hostile file, and what must happen.
struct Case {
    name: &'static str,
    a: &'static [u32],
    plant: Plant,
    expect: Expect,
}

fn case(
    name: &'static str,
    a: &'static [u32],
    plant: impl Fn(&Path, &Path) + 'static,
    expect: Expect,
) -> Case {
    Case {
        name,
        a,
        plant: Box::new(plant),
        expect,
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    std::fs::write(path, data).unwrap();
}

/// Makes `/etc/group` a symlink to `target`, and `/etc/grp` the file that
/// puts alice in 50000.
fn link_group_to(root: &Path, target: &str) {
    write(&root.join("etc/grp"), b"group-in-image:x:50000:alice\n");
    let g = root.join("etc/group");
    let _ = std::fs::remove_file(&g);
    symlink(target, g).unwrap();
}

/// The matrix. `plant(rootfs, host_file)` shapes the image; A is what the
/// CRI runtime would have written.
fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // A file inside the image at the same path as the host file grants
        // 51000: in-root resolution reads it, never the host's 50000.
        case(
            "absolute symlink to a host file",
            &[1000, 50000, 51000, 60000],
            |root, host| {
                write(
                    &root.join(host.strip_prefix("/").unwrap()),
                    b"inimage:x:51000:alice\n",
                );
                let g = root.join("etc/group");
                let _ = std::fs::remove_file(&g);
                symlink(host, g).unwrap();
            },
            Runs("1000 50000 60000"),
        ),
        case(
            "relative ../../.. symlink",
            &[1000, 50000, 51000, 60000],
            |root, host| {
                write(
                    &root.join(host.strip_prefix("/").unwrap()),
                    b"inimage:x:51000:alice\n",
                );
                let g = root.join("etc/group");
                let _ = std::fs::remove_file(&g);
                symlink(format!("../../../../../../../..{}", host.display()), g).unwrap();
            },
            Runs("1000 50000 60000"),
        ),
        case(
            "symlink with a target that is not UTF-8",
            &[1000, 50000, 60000],
            |root, _| {
                use std::os::unix::ffi::OsStringExt;
                let target = std::ffi::OsString::from_vec(b"real-\xff-group".to_vec());
                write(
                    &root.join("etc").join(&target),
                    b"group-in-image:x:50000:alice\n",
                );
                let g = root.join("etc/group");
                let _ = std::fs::remove_file(&g);
                symlink(&target, g).unwrap();
            },
            Runs("1000 60000"),
        ),
        // Shapes that containerd's and CRI-O's own walks read as /etc/grp
        // (they apply `..` and a trailing slash to the text) where the
        // kernel finds nothing: the group there is an image group.
        case(
            "symlink through a missing directory and ..",
            &[1000, 50000, 60000],
            |root, _| link_group_to(root, "nope/../grp"),
            Runs("1000 60000"),
        ),
        case(
            "symlink through a file and ..",
            &[1000, 50000, 60000],
            |root, _| {
                write(&root.join("etc/hostname"), b"image\n");
                link_group_to(root, "hostname/../grp");
            },
            Runs("1000 60000"),
        ),
        case(
            "symlink with a trailing slash",
            &[1000, 50000, 60000],
            |root, _| link_group_to(root, "grp/"),
            Runs("1000 60000"),
        ),
        // containerd joins `sub/..` by text before it looks at `sub`.
        case(
            "symlink through a link and ..",
            &[1000, 50000, 60000],
            |root, _| {
                symlink("/usr/x", root.join("etc/sub")).unwrap();
                link_group_to(root, "sub/../grp");
            },
            Runs("1000 60000"),
        ),
        case(
            "symlink loop",
            &[1000, 50000],
            |root, _| {
                let g = root.join("etc/group");
                let _ = std::fs::remove_file(&g);
                symlink("/etc/group2", &g).unwrap();
                symlink("/etc/group", root.join("etc/group2")).unwrap();
            },
            Refused("/etc/group"),
        ),
        case(
            "/etc a symlink out of the rootfs",
            &[1000, 50000, 60000],
            |root, _| {
                // A host directory (beside the rootfs) whose files grant
                // alice 50000; inside the rootfs its path does not exist.
                let host_etc = root.parent().unwrap().join("host-etc");
                write(&host_etc.join("passwd"), PASSWD.as_bytes());
                write(&host_etc.join("group"), b"onhost:x:50000:alice\n");
                std::fs::remove_dir_all(root.join("etc")).unwrap();
                symlink(&host_etc, root.join("etc")).unwrap();
            },
            Runs("1000 50000 60000"),
        ),
        case(
            "FIFO",
            &[1000, 50000],
            |root, _| {
                let g = root.join("etc/group");
                std::fs::remove_file(&g).unwrap();
                nix::unistd::mkfifo(&g, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
            },
            Refused("not a regular file (a FIFO)"),
        ),
        case(
            "character device like /dev/zero",
            &[1000, 50000],
            |root, _| {
                let g = root.join("etc/group");
                std::fs::remove_file(&g).unwrap();
                nix::sys::stat::mknod(
                    &g,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                    nix::sys::stat::makedev(1, 5),
                )
                .unwrap();
            },
            Refused("not a regular file"),
        ),
        case(
            "directory",
            &[1000, 50000],
            |root, _| {
                let g = root.join("etc/group");
                std::fs::remove_file(&g).unwrap();
                std::fs::create_dir(&g).unwrap();
            },
            Refused("not a regular file (a directory)"),
        ),
        case(
            "1 GiB sparse /etc/passwd",
            &[1000, 50000],
            |root, _| {
                let f = std::fs::File::create(root.join("etc/passwd")).unwrap();
                f.set_len(1 << 30).unwrap();
            },
            Refused("larger than"),
        ),
        case(
            "binary garbage",
            &[1000, 50000, 60000],
            |root, _| {
                let garbage: Vec<u8> = (0..65536u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect();
                write(&root.join("etc/group"), &garbage);
            },
            Runs("1000 50000 60000"),
        ),
        case(
            "NUL bytes and non-UTF-8 around a real entry",
            &[1000, 50000, 60000],
            |root, _| {
                write(
                    &root.join("etc/group"),
                    b"\0\0\xff\xfe:x:1:\n\xc3\x28bad:x:2:alice\ngroup-in-image:x:50000:alice\n\0",
                );
            },
            Runs("1000 60000"),
        ),
        case(
            "CRLF line ends",
            &[1000, 50000, 60000],
            |root, _| {
                write(
                    &root.join("etc/passwd"),
                    PASSWD.replace('\n', "\r\n").as_bytes(),
                );
                write(
                    &root.join("etc/group"),
                    b"root:x:0:\r\ngroup-in-image:x:50000:alice\r\n",
                );
            },
            Runs("1000 60000"),
        ),
        case(
            "a 4 MiB line, then the real entry",
            &[1000, 50000, 60000],
            |root, _| {
                let mut g = b"long:x:7:".to_vec();
                g.extend(std::iter::repeat_n(b'a', 4 << 20));
                g.extend(b"\ngroup-in-image:x:50000:alice\n");
                write(&root.join("etc/group"), &g);
            },
            Runs("1000 60000"),
        ),
        case(
            "100 000 lines",
            &[1000, 50000, 60000],
            |root, _| {
                let mut g = String::new();
                for i in 0..100_000 {
                    g.push_str(&format!("g{i}:x:{}:bob,carol\n", 100_000 + i));
                }
                g.push_str("group-in-image:x:50000:alice\n");
                write(&root.join("etc/group"), g.as_bytes());
            },
            Runs("1000 60000"),
        ),
        case(
            "duplicate group names and gids",
            &[1000, 50000, 50001, 60000],
            |root, _| {
                write(
                    &root.join("etc/group"),
                    b"dup:x:50000:alice\ndup:x:50001:alice\nother:x:50000:\n",
                );
            },
            Runs("1000 60000"),
        ),
        // With runAsUser containerd looks up the first entry of uid 1000
        // (alice); with the image's USER `alias` the kubelet sends the name
        // and containerd looks up `alias`: the process is uid 1000 either
        // way, so both names' groups are image groups.
        case(
            "a user listed under several names",
            &[1000, 50000, 52000],
            |root, _| {
                write(
                    &root.join("etc/passwd"),
                    format!("{PASSWD}alias:x:1000:1000::/:/bin/sh\n").as_bytes(),
                );
                write(
                    &root.join("etc/group"),
                    b"group-in-image:x:50000:alice\nfor-alias:x:52000:alias\n",
                );
            },
            Runs("1000"),
        ),
    ]
}

#[test]
fn hostile_images_over_the_real_runtime() {
    require_root();
    println!("runtime {}", test_runtime());
    let config = NodeConfig::runtime(&test_runtime());
    let host = host_group_file();
    let mut failures = Vec::new();
    let (mut ran, mut refused) = (0, 0);
    for c in cases() {
        let spec = containerd_spec(&["id", "-G"], 1000, 1000, c.a, &[]);
        let b = Bundle::new("hostile", &kep_image(), &spec);
        (c.plant)(&b.path().join("rootfs"), host.path());
        let before = b.config_bytes();
        let started = Instant::now();
        let out = bounded::output_within(wrapper(&config, &run_args(&b)), Duration::from_secs(20));
        let took = started.elapsed();
        let outcome = match (&c.expect, out.status.success()) {
            (Expect::Runs(groups), true) => (stdout(&out) == *groups)
                .then_some(())
                .ok_or(format!("ran with {:?}, want {groups:?}", stdout(&out))),
            (Expect::Refused(msg), false) => {
                let errors: Vec<Value> = b
                    .log_lines()
                    .into_iter()
                    .filter(|l| l["level"] == "error")
                    .collect();
                let text = errors.first().and_then(|e| e["msg"].as_str()).unwrap_or("");
                if errors.len() == 1
                    && text.starts_with("strict-groups: ")
                    && text.contains(msg)
                    && b.config_bytes() == before
                {
                    Ok(())
                } else {
                    Err(format!(
                        "refused, but {errors:?} (want one error containing {msg:?}, config.json unchanged)"
                    ))
                }
            }
            (Expect::Runs(_), false) => Err(format!("refused: {}", stderr(&out))),
            (Expect::Refused(_), true) => Err(format!("ran: {}", stdout(&out))),
        };
        let shown = match &outcome {
            Ok(()) => match c.expect {
                Expect::Runs(g) => format!("runs, id -G = {g}"),
                Expect::Refused(_) => format!("refused: {}", stderr(&out)),
            },
            Err(e) => format!("FAIL {e}"),
        };
        println!("{:<44} {:>6} ms  {shown}", c.name, took.as_millis());
        match (outcome, &c.expect) {
            (Err(e), _) => failures.push(format!("{}: {e}", c.name)),
            (Ok(()), Expect::Runs(_)) => ran += 1,
            (Ok(()), Expect::Refused(_)) => refused += 1,
        }
    }
    println!(
        "result: {} hostile images: {ran} ran with the expected groups, {refused} refused with a clear error, {} failed",
        ran + refused + failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// With D from containerd's record, no image file is read at all: the cases
/// that the rootfs path refuses are decided without looking at the image.
#[test]
fn exact_source_reads_no_image_file() {
    require_root();
    let ctd = PrivateContainerd::start("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
    // runc itself would read the image's files; the decision is under test,
    // over a runtime that uses gids as numbers (see tests/bypass.rs for runc).
    let runtime = fake_runtime("crun version 1.8.1");
    let config = NodeConfig::runtime(&runtime.display().to_string());
    let host = host_group_file();
    for c in cases()
        .into_iter()
        .filter(|c| matches!(c.expect, Expect::Refused(_)))
    {
        let spec = containerd_spec(&["id", "-G"], 1000, 1000, c.a, &[]);
        let b = Bundle::new("exact", &kep_image(), &spec);
        (c.plant)(&b.path().join("rootfs"), host.path());
        ctd.create_record("k8s.io", &b.id, Some(&cri_metadata(&b.id, &[])));
        let mut cmd = wrapper(&config, &create_args(&b));
        cmd.env("TTRPC_ADDRESS", format!("{}.ttrpc", ctd.socket().display()));
        assert!(
            status_detached(cmd).success(),
            "{}: {:?}",
            c.name,
            b.log_lines()
        );
        let d = &b.decisions()[0];
        assert_eq!(d["source"], "containerd", "{}", c.name);
        assert_eq!(d["kept"], json!([1000]), "{}", c.name);
    }
}

#[test]
fn malformed_input_is_refused_and_nothing_changes() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000, 50000], &[]);

    // A 50 MiB config.json.
    let b = Bundle::new("huge", &kep_image(), &spec);
    let mut big = serde_json::to_vec(&spec).unwrap();
    big.pop();
    big.extend(format!(",\"pad\":\"{}\"}}", "x".repeat(50 << 20)).bytes());
    std::fs::write(b.config_path(), &big).unwrap();
    let out = run_container(&NodeConfig::runtime(&test_runtime()), &b);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("larger than"), "{out:?}");
    assert_eq!(
        std::fs::metadata(b.config_path()).unwrap().len(),
        big.len() as u64
    );

    // A --log path that cannot be opened: refused before anything changes.
    let b = Bundle::new("badlog", &kep_image(), &spec);
    let before = b.config_bytes();
    let args: Vec<String> = vec![
        "--root".into(),
        b.root.display().to_string(),
        "--log".into(),
        "/nonexistent-dir/log.json".into(),
        "create".into(),
        "--bundle".into(),
        b.path().display().to_string(),
        b.id.clone(),
    ];
    let out = output(wrapper(&NodeConfig::runtime(&test_runtime()), &args));
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("strict-groups: ")
            && stderr(&out).contains("/nonexistent-dir/log.json"),
        "{out:?}"
    );
    assert_eq!(b.config_bytes(), before);

    // A node config that cannot be read (a directory in its place).
    let b = Bundle::new("unreadable", &kep_image(), &spec);
    let node = NodeConfig::new("");
    std::fs::remove_file(node.path()).unwrap();
    std::fs::create_dir(node.path()).unwrap();
    let before = b.config_bytes();
    let out = run_container(&node, &b);
    assert!(!out.status.success());
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(
        log.contains("strict-groups: ") && log.contains("reading node config"),
        "{log}"
    );
    assert_eq!(b.config_bytes(), before);
}

/// Kills the wrapper at every step of a rewrite: config.json is always the
/// old file or the new one, never torn. (Fault points exist in debug builds.)
#[test]
fn a_crash_at_any_step_leaves_the_old_or_the_new_file() {
    require_root();
    let spec = containerd_spec(&["id"], 1000, 1000, &[1000, 50000, 60000], &[]);
    for step in ["written-partially", "written", "synced", "renamed"] {
        let b = Bundle::new("crash", &kep_image(), &spec);
        let old = b.config_bytes();
        let mut cmd = wrapper(&NodeConfig::runtime(&test_runtime()), &create_args(&b));
        cmd.env("STRICT_GROUPS_TEST_CRASH_AT", step);
        let status = status_detached(cmd);
        assert_eq!(
            status.signal(),
            Some(9),
            "{step}: the wrapper must die there"
        );
        let now = b.config_bytes();
        let new: Value = serde_json::from_slice(&now)
            .unwrap_or_else(|e| panic!("{step}: torn config.json: {e}"));
        if now != old {
            assert_eq!(
                new["process"]["user"]["additionalGids"],
                json!([1000, 60000]),
                "{step}"
            );
            assert_eq!(step, "renamed", "the new file appears only at the rename");
        }
        // The container was not created: the runtime never ran.
        let state = Command::new(test_runtime())
            .arg("--root")
            .arg(&b.root)
            .args(["state", &b.id])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(!state.status.success(), "{step}");

        // The next create succeeds and clears what the killed one left.
        let cmd = wrapper(&NodeConfig::runtime(&test_runtime()), &create_args(&b));
        assert!(
            status_detached(cmd).success(),
            "{step}: {:?}",
            b.log_lines()
        );
        let leftovers: Vec<_> = std::fs::read_dir(b.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".strict-groups."))
            .collect();
        assert!(leftovers.is_empty(), "{step}: {leftovers:?}");
    }
}

/// 100 containers created at once through the wrapper: each gets the right
/// groups, and no temp file is left in any bundle.
#[test]
fn a_hundred_concurrent_containers() {
    require_root();
    let config = NodeConfig::runtime(&test_runtime());
    let bundles: Vec<Bundle> = (0..100)
        .map(|i| {
            let declared_by_image = 50000 + i;
            let image = Image {
                group: Some(format!(
                    "root:x:0:\ngroup-in-image:x:{declared_by_image}:alice\n"
                )),
                ..kep_image()
            };
            let spec = containerd_spec(
                &["id", "-G"],
                1000,
                1000,
                &[1000, declared_by_image, 60000],
                &[],
            );
            Bundle::new("load", &image, &spec)
        })
        .collect();
    let started = Instant::now();
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = bundles
            .iter()
            .map(|b| s.spawn(|| run_container(&config, b)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    println!(
        "100 containers through the wrapper in {:?}",
        started.elapsed()
    );
    for (b, out) in bundles.iter().zip(&outputs) {
        assert!(out.status.success(), "{}: {out:?}", b.id);
        assert_eq!(stdout(out), "1000 60000", "{}", b.id);
        let leftovers: Vec<_> = std::fs::read_dir(b.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".strict-groups."))
            .collect();
        assert!(leftovers.is_empty(), "{}: {leftovers:?}", b.id);
    }
}
