//! The wrapper's reading of an image's `/etc/passwd` and `/etc/group`
//! against the real parser: runc's `libcontainer/user` (Debian's
//! golang-github-opencontainers-runc-dev), driven by `tests/oracle/` as
//! containerd, CRI-O and runc drive it. Generated files mix every byte class
//! that ever made the two disagree: Unicode and ASCII white space, comment
//! lines, huge, signed and malformed numbers, duplicate users and names,
//! CRLF, NUL and invalid UTF-8, lines around the parsers' buffer sizes, a
//! missing last newline, missing files.
//!
//! For each case: containerd's and CRI-O's image groups and runc's
//! additional groups are equal to the oracle's, list for list; and the set
//! the wrapper removes for the process uid that look-up gives holds every
//! group the look-up added. `DIFF_CASES` (default 100000) and `DIFF_SEED`
//! set the run; a failure prints the case.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use strict_groups::groups::{self, Rules};

/// SplitMix64: small, seedable, good enough to pick grammar productions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMES: &[&str] = &[
    "alice",
    "bob",
    "root",
    "#x",
    "x",
    "1000",
    "0",
    "",
    "alice ",
    " alice",
    "alice\u{a0}",
    "ålice",
    "\u{3000}alice",
    "ALICE",
    "alice\u{200b}",
];
const IDS: &[&str] = &[
    "0",
    "1000",
    "50000",
    "60000",
    "4294968296",
    "-1",
    "+1000",
    "01000",
    "99999999999999999999",
    "-99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    " 1000",
    "1000 ",
    "",
    "abc",
    "4294967295",
    "2147483647",
    "2147483648",
    "1_000",
    "1e3",
];
const SPACES: &[&str] = &[
    "", "", "", " ", "\t", "\u{b}", "\u{c}", "\r", "\u{a0}", "\u{85}", "\u{3000}", "\u{2028}",
    "\u{200b}", "\0", "\u{feff}",
];

fn name(r: &mut Rng) -> String {
    if r.chance(3) {
        // Invalid UTF-8 stands for itself in Go's byte comparisons.
        return String::from_utf8_lossy(b"al\xffice").into_owned();
    }
    r.pick(NAMES).to_string()
}

fn members(r: &mut Rng) -> String {
    let n = r.below(4);
    let list: Vec<String> = (0..n).map(|_| name(r)).collect();
    let sep = if r.chance(10) { ", " } else { "," };
    list.join(sep)
}

fn decorate(r: &mut Rng, line: String) -> String {
    format!("{}{line}{}", r.pick(SPACES), r.pick(SPACES))
}

fn passwd_line(r: &mut Rng) -> String {
    match r.below(20) {
        0 => String::new(),
        1 => format!("#{}", name(r)),
        2 => name(r),
        3 => format!("{}:x:{}", name(r), r.pick(IDS)),
        _ => format!(
            "{}:x:{}:{}:gecos:/home:/bin/sh",
            name(r),
            r.pick(IDS),
            r.pick(IDS)
        ),
    }
}

fn group_line(r: &mut Rng) -> String {
    match r.below(20) {
        0 => String::new(),
        1 => format!("# {}:x:50000:{}", name(r), members(r)),
        2 => format!("{}:x:{}", name(r), r.pick(IDS)),
        3 => format!("{}:x:{}:{}:extra", name(r), r.pick(IDS), members(r)),
        _ => format!("{}:x:{}:{}", name(r), r.pick(IDS), members(r)),
    }
}

/// A file of generated lines; now and then one padded to a parser's buffer
/// size (4096 for group's `bufio.Reader`, 65536 for passwd's Scanner).
fn file(r: &mut Rng, line: fn(&mut Rng) -> String, buffer: usize) -> Vec<u8> {
    let mut out = String::new();
    for _ in 0..r.below(6) {
        let body = line(r);
        let mut l = decorate(r, body);
        if r.chance(2) {
            let target = buffer - 2 + r.below(4);
            let pad = if r.chance(50) { "," } else { "\r" };
            while l.len() < target {
                l.push_str(pad);
            }
            l.truncate(target);
        }
        out.push_str(&l);
        out.push_str(if r.chance(15) { "\r\n" } else { "\n" });
    }
    if r.chance(20) && out.ends_with('\n') {
        out.pop();
    }
    out.into_bytes()
}

fn userstr(r: &mut Rng) -> String {
    match r.below(10) {
        0 => String::new(),
        1 => format!("{}:{}", name(r), r.pick(IDS)),
        2 => format!("{}:{}", r.pick(IDS), name(r)),
        3..=5 => name(r),
        _ => r.pick(IDS).to_string(),
    }
}

struct Case {
    passwd: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
    user: String,
    gids: Vec<u32>,
}

fn case(r: &mut Rng) -> Case {
    let gid_pool = [0u32, 7, 1000, 50000, 60000, u32::MAX, 2147483648];
    Case {
        passwd: (!r.chance(5)).then(|| file(r, passwd_line, 65536)),
        group: (!r.chance(5)).then(|| file(r, group_line, 4096)),
        user: userstr(r),
        gids: (0..r.below(4))
            .map(|_| gid_pool[r.below(gid_pool.len())])
            .collect(),
    }
}

fn encode(c: &Case, out: &mut Vec<u8>) {
    let flags = u8::from(c.passwd.is_some()) | (u8::from(c.group.is_some()) << 1);
    out.push(flags);
    for blob in [
        c.passwd.as_deref().unwrap_or_default(),
        c.group.as_deref().unwrap_or_default(),
        c.user.as_bytes(),
    ] {
        out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        out.extend_from_slice(blob);
    }
    out.extend_from_slice(&(c.gids.len() as u32).to_le_bytes());
    for g in &c.gids {
        out.extend_from_slice(&g.to_le_bytes());
    }
}

#[derive(serde::Deserialize, Debug)]
struct Lookup {
    ok: bool,
    uid: Option<u32>,
    gids: Option<Vec<u32>>,
}

#[derive(serde::Deserialize, Debug)]
struct Answer {
    containerd: Lookup,
    crio: Lookup,
    runc: Option<Vec<i64>>,
}

/// Builds the oracle in GOPATH mode from Debian's Go sources: no download.
fn build_oracle(dir: &Path) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/groups_oracle.go");
    let bin = dir.join("groups-oracle");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "")
        .current_dir(dir)
        .output()
        .expect("go (golang-go) is needed to build the oracle");
    assert!(
        out.status.success(),
        "building the oracle (needs golang-github-opencontainers-runc-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

fn show(c: &Case) -> String {
    format!(
        "passwd={:?}\ngroup={:?}\nuser={:?} gids={:?}",
        c.passwd.as_deref().map(String::from_utf8_lossy),
        c.group.as_deref().map(String::from_utf8_lossy),
        c.user,
        c.gids
    )
}

#[test]
fn image_files_parse_as_libcontainer_parses_them() {
    let cases: usize = std::env::var("DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let dir = tempfile::tempdir().unwrap();
    let oracle = build_oracle(dir.path());
    let mut rng = Rng(seed);
    let all: Vec<Case> = (0..cases).map(|_| case(&mut rng)).collect();
    let mut input = Vec::new();
    for c in &all {
        encode(c, &mut input);
    }
    let mut child = Command::new(&oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let answers: Vec<Answer> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(answers.len(), all.len());

    let (mut compared, mut covered) = (0usize, 0usize);
    for (c, want) in all.iter().zip(&answers) {
        let (p, g) = (c.passwd.as_deref(), c.group.as_deref());
        let ctx = || format!("seed {seed}\n{}\noracle {want:?}", show(c));
        // containerd's look-up, list for list.
        let got = groups::containerd_groups(p, g, c.user.as_bytes());
        assert_eq!(got.is_ok(), want.containerd.ok, "containerd ok: {}", ctx());
        if let Ok(gids) = &got {
            assert_eq!(
                Some(gids),
                want.containerd.gids.as_ref(),
                "containerd: {}",
                ctx()
            );
        }
        // CRI-O's look-up: uid and groups.
        let got = groups::crio_user(p, g, c.user.as_bytes());
        assert_eq!(got.is_ok(), want.crio.ok, "crio ok: {:?} {}", got, ctx());
        if let Ok((uid, gids)) = &got {
            assert_eq!(Some(*uid), want.crio.uid, "crio uid: {}", ctx());
            assert_eq!(Some(gids), want.crio.gids.as_ref(), "crio: {}", ctx());
        }
        // runc's look-up of the spec's gids by name.
        let got = groups::runc_additional_groups(g, &c.gids);
        let want_runc = want
            .runc
            .as_ref()
            .map(|v| v.iter().copied().collect::<BTreeSet<_>>());
        assert_eq!(got, want_runc, "runc: {}", ctx());
        compared += 3;
        // What the wrapper removes for the uid the runtime wrote covers every
        // group that runtime added. (containerd never looks up an empty user
        // string: it uses "0" then.)
        let runtimes = [
            (Rules::Containerd, &want.containerd),
            (Rules::Crio, &want.crio),
        ];
        for (rules, lookup) in runtimes {
            if rules == Rules::Containerd && c.user.is_empty() {
                continue;
            }
            let (true, Some(uid), Some(added)) = (lookup.ok, lookup.uid, lookup.gids.as_ref())
            else {
                continue;
            };
            let Ok(removed) = groups::image_groups(p, g, uid, rules) else {
                panic!("the wrapper fails where the runtime did not: {}", ctx());
            };
            let missed: Vec<&u32> = added.iter().filter(|x| !removed.contains(x)).collect();
            assert!(missed.is_empty(), "{rules:?} keeps {missed:?}: {}", ctx());
            covered += 1;
        }
    }
    println!(
        "result: {cases} generated cases (seed {seed}), {compared} look-ups compared with \
         libcontainer, 0 differences; {covered} removal sets cover the runtime's image groups"
    );
}
