//! `strict-groups report`: from audit to enforce. Reads decision logs (the
//! JSON lines of `decision_log`, or `--log` files; plain or gzip, rotated or
//! concatenated from many nodes) and groups the decisions that removed (or,
//! in audit mode, would remove) groups by namespace, workload, image and
//! removed gids: the workloads that depend on image groups.
//!
//! The core (`Tally`) takes lines and returns the report; the shell around it
//! opens files. Every input line is untrusted (a log can be torn, truncated,
//! concatenated or forged by whoever can write it): a line that is not a
//! decision is counted, a malformed one is reported by file and line number,
//! and nothing makes the report fail or use unbounded memory per line.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::record::DECISION_MSG;

/// The longest line read whole; a longer one is reported and skipped (a
/// decision line is well under 2 KiB).
pub const MAX_LINE: usize = 64 * 1024;

/// How many malformed lines are named one by one; the rest are counted.
const MAX_PROBLEMS_SHOWN: usize = 1000;

#[derive(clap::Args)]
pub struct Args {
    /// Decision logs (plain or gzip; several, rotated or concatenated from
    /// many nodes). None or `-`: standard input.
    files: Vec<PathBuf>,
    /// Print JSON for tools instead of a table.
    #[arg(long)]
    json: bool,
}

/// The fields of a decision line the report uses.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    node: Cow<'a, str>,
    #[serde(borrow, default)]
    pod_namespace: Cow<'a, str>,
    #[serde(borrow, default)]
    pod_name: Cow<'a, str>,
    #[serde(borrow, default)]
    image: Cow<'a, str>,
    removed: Option<Vec<u32>>,
}

#[derive(Hash, PartialEq, Eq, Clone)]
struct Key {
    namespace: String,
    workload: String,
    image: String,
    removed: Vec<u32>,
}

struct Seen {
    count: u64,
    first: String,
    last: String,
    nodes: BTreeSet<String>,
}

/// One row of the report.
#[derive(Serialize, Debug, PartialEq)]
pub struct Row {
    pub namespace: String,
    pub workload: String,
    pub image: String,
    pub removed: Vec<u32>,
    pub count: u64,
    pub nodes: usize,
    pub first_seen: String,
    pub last_seen: String,
}

/// The whole report.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub lines: u64,
    pub decisions: u64,
    pub decisions_removing: u64,
    pub other_lines: u64,
    pub malformed_lines: u64,
    pub rows: Vec<Row>,
    /// "FILE:LINE: why", the first `MAX_PROBLEMS_SHOWN` of them.
    pub problems: Vec<String>,
}

/// The report, built line by line.
#[derive(Default)]
pub struct Tally {
    seen: HashMap<Key, Seen>,
    report: Report,
}

impl Tally {
    /// Takes one line (without its newline) of `source`. `torn` says that the
    /// line ended the input without a newline; `too_long` that it was cut.
    pub fn line(&mut self, source: &str, number: u64, line: &[u8], torn: bool, too_long: bool) {
        self.report.lines += 1;
        let problem = if too_long {
            Some(format!("longer than {MAX_LINE} bytes"))
        } else {
            self.parse(line, torn).err()
        };
        if let Some(why) = problem {
            self.report.malformed_lines += 1;
            if self.report.problems.len() < MAX_PROBLEMS_SHOWN {
                self.report
                    .problems
                    .push(format!("{source}:{number}: {why}"));
            }
        }
    }

    fn parse(&mut self, line: &[u8], torn: bool) -> Result<(), String> {
        let text = trim_ascii(line);
        if text.is_empty() {
            self.report.other_lines += 1;
            return Ok(());
        }
        let parsed: Line = match serde_json::from_slice(text) {
            Ok(l) => l,
            Err(_) if torn => return Err("torn: the input ends inside this line".into()),
            Err(e) => return Err(format!("not a log line: {e}")),
        };
        if parsed.msg.as_deref() != Some(DECISION_MSG) {
            self.report.other_lines += 1;
            return Ok(());
        }
        let Some(mut removed) = parsed.removed else {
            return Err("a decision without a \"removed\" list".into());
        };
        self.report.decisions += 1;
        if removed.is_empty() {
            return Ok(());
        }
        self.report.decisions_removing += 1;
        removed.sort_unstable();
        removed.dedup();
        let key = Key {
            namespace: parsed.pod_namespace.into_owned(),
            workload: workload(&parsed.pod_name).to_string(),
            image: parsed.image.into_owned(),
            removed,
        };
        let time = parsed.time.as_ref();
        let seen = self.seen.entry(key).or_insert_with(|| Seen {
            count: 0,
            first: time.to_string(),
            last: time.to_string(),
            nodes: BTreeSet::new(),
        });
        seen.count += 1;
        // The wrapper writes UTC RFC 3339 times of one width: they sort as text.
        if time < seen.first.as_str() {
            seen.first = time.to_string();
        }
        if time > seen.last.as_str() {
            seen.last = time.to_string();
        }
        if !seen.nodes.contains(parsed.node.as_ref()) {
            seen.nodes.insert(parsed.node.into_owned());
        }
        Ok(())
    }

    /// The report, rows by namespace, workload, image and gids.
    pub fn finish(mut self) -> Report {
        let mut rows: Vec<Row> = self
            .seen
            .into_iter()
            .map(|(k, s)| Row {
                namespace: k.namespace,
                workload: k.workload,
                image: k.image,
                removed: k.removed,
                count: s.count,
                nodes: s.nodes.len(),
                first_seen: s.first,
                last_seen: s.last,
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.namespace, &a.workload, &a.image, &a.removed).cmp(&(
                &b.namespace,
                &b.workload,
                &b.image,
                &b.removed,
            ))
        });
        self.report.rows = rows;
        self.report
    }

    /// Reads every line of `input` (named `source` in problems).
    pub fn read(&mut self, source: &str, input: impl Read) -> io::Result<()> {
        let mut reader = BufReader::with_capacity(64 * 1024, input);
        let mut line = Vec::with_capacity(4096);
        let mut number = 0;
        loop {
            line.clear();
            let (ended, too_long) = read_capped_line(&mut reader, &mut line)?;
            if ended == LineEnd::Eof && line.is_empty() && !too_long {
                return Ok(());
            }
            number += 1;
            self.line(source, number, &line, ended == LineEnd::Eof, too_long);
            if ended == LineEnd::Eof {
                return Ok(());
            }
        }
    }
}

#[derive(PartialEq, Eq)]
enum LineEnd {
    Newline,
    Eof,
}

/// Reads up to the next newline into `line`, keeping at most `MAX_LINE`
/// bytes (the rest of a longer line is read and dropped).
fn read_capped_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<(LineEnd, bool)> {
    let mut too_long = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((LineEnd::Eof, too_long));
        }
        let (chunk, found) = match memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i)),
            None => (buf, None),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = found.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if found.is_some() {
            return Ok((LineEnd::Newline, too_long));
        }
    }
}

fn memchr(byte: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == byte)
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// The characters of the random suffixes Kubernetes generates (pod names of
/// a ReplicaSet, DaemonSet or Job; a Deployment's pod-template-hash): no
/// vowels, so that they never spell a word.
const GENERATED: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The workload of a pod: its name without the suffixes its controller
/// generated (`web-7d4b9c8f6d-x2x9q` → `web`, `agent-k8s2p` → `agent`,
/// `db-0` → `db`). A name without such a suffix is its own workload.
pub fn workload(pod: &str) -> &str {
    let generated = |s: &str, lengths: std::ops::RangeInclusive<usize>| -> Option<usize> {
        let (head, tail) = s.rsplit_once('-')?;
        (!head.is_empty()
            && lengths.contains(&tail.len())
            && tail.bytes().all(|b| GENERATED.contains(&b)))
        .then_some(head.len())
    };
    if let Some(end) = generated(pod, 5..=5) {
        let head = &pod[..end];
        return match generated(head, 6..=10) {
            Some(end) => &head[..end],
            None => head,
        };
    }
    match pod.rsplit_once('-') {
        Some((head, ordinal))
            if !head.is_empty()
                && !ordinal.is_empty()
                && ordinal.bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => pod,
    }
}

/// Opens `path` (`-`: standard input), gunzipping it when it starts with
/// gzip's magic bytes (also several concatenated gzip members).
fn open(path: &std::path::Path) -> io::Result<Box<dyn Read>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path)?)
    };
    let mut buffered = BufReader::new(raw);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}

/// The text report, for people.
pub fn text(report: &Report) -> String {
    let mut out = format!(
        "{} decisions ({} removing groups), {} other lines, {} malformed lines\n",
        report.decisions, report.decisions_removing, report.other_lines, report.malformed_lines
    );
    if report.rows.is_empty() {
        out.push_str("no workload depends on image groups\n");
        return out;
    }
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "IMAGE",
        "REMOVED",
        "COUNT",
        "NODES",
        "FIRST SEEN",
        "LAST SEEN",
    ];
    let cells: Vec<[String; 8]> = report
        .rows
        .iter()
        .map(|r| {
            let removed: Vec<String> = r.removed.iter().map(u32::to_string).collect();
            [
                r.namespace.clone(),
                r.workload.clone(),
                r.image.clone(),
                removed.join(","),
                r.count.to_string(),
                r.nodes.to_string(),
                r.first_seen.clone(),
                r.last_seen.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut push = |row: &[String]| {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push(&header.map(str::to_string));
    for row in &cells {
        push(row);
    }
    out
}

pub fn run(args: &Args) -> i32 {
    let mut tally = Tally::default();
    let stdin = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin[..]
    } else {
        &args.files[..]
    };
    let mut failed = false;
    for path in files {
        let name = path.display().to_string();
        if let Err(e) = open(path).and_then(|input| tally.read(&name, input)) {
            eprintln!("strict-groups: report: reading {name}: {e}");
            failed = true;
        }
    }
    let report = tally.finish();
    for problem in &report.problems {
        eprintln!("strict-groups: report: skipped {problem}");
    }
    let unnamed = report.malformed_lines as usize - report.problems.len();
    if unnamed > 0 {
        eprintln!("strict-groups: report: skipped {unnamed} more malformed lines");
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report serializes")
        );
    } else {
        print!("{}", text(&report));
    }
    i32::from(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(time: &str, node: &str, ns: &str, pod: &str, image: &str, removed: &str) -> String {
        format!(
            r#"{{"level":"info","msg":"strict-groups: decision","time":"{time}","action":"create","mode":"audit","node":"{node}","pod_namespace":"{ns}","pod_name":"{pod}","image":"{image}","removed":{removed}}}"#
        )
    }

    fn report_of(text: &str) -> Report {
        let mut t = Tally::default();
        t.read("log", text.as_bytes()).unwrap();
        t.finish()
    }

    #[test]
    fn groups_by_namespace_workload_image_and_gids() {
        let log = [
            decision(
                "2026-01-02T00:00:00.000000000Z",
                "n1",
                "team",
                "web-7d4b9c8f6d-x2x9q",
                "web:1",
                "[50000]",
            ),
            decision(
                "2026-01-01T00:00:00.000000000Z",
                "n2",
                "team",
                "web-7d4b9c8f6d-bq4zk",
                "web:1",
                "[50000]",
            ),
            decision(
                "2026-01-03T00:00:00.000000000Z",
                "n1",
                "team",
                "web-5f6c7d8b9k-zzzzz",
                "web:1",
                "[50000]",
            ),
            decision(
                "2026-01-01T00:00:00.000000000Z",
                "n1",
                "team",
                "db-0",
                "pg:15",
                "[70,50000]",
            ),
            decision(
                "2026-01-01T00:00:00.000000000Z",
                "n1",
                "team",
                "db-1",
                "pg:15",
                "[50000,70]",
            ),
            decision(
                "2026-01-01T00:00:00.000000000Z",
                "n1",
                "team",
                "idle",
                "x:1",
                "[]",
            ),
            r#"{"level":"warning","msg":"strict-groups: warning: something"}"#.to_string(),
        ]
        .join("\n");
        let r = report_of(&log);
        assert_eq!((r.lines, r.decisions, r.decisions_removing), (7, 6, 5));
        assert_eq!((r.other_lines, r.malformed_lines), (1, 0));
        let rows: Vec<String> = r
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:?} count {} nodes {} {}..{}",
                    r.workload, r.image, r.removed, r.count, r.nodes, r.first_seen, r.last_seen
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "db pg:15 [70, 50000] count 2 nodes 1 2026-01-01T00:00:00.000000000Z..2026-01-01T00:00:00.000000000Z",
                "web web:1 [50000] count 3 nodes 2 2026-01-01T00:00:00.000000000Z..2026-01-03T00:00:00.000000000Z",
            ]
        );
    }

    #[test]
    fn malformed_torn_and_hostile_lines_are_named_never_fatal() {
        let good = decision("t", "n", "ns", "p", "i", "[1]");
        let log = format!(
            "not json\n{good}\n[1,2]\n{{\"msg\":\"strict-groups: decision\"}}\n{{\"msg\":\"strict-groups: decision\",\"removed\":[-1]}}\n\u{0}\u{ff}\n\n{}",
            &good[..good.len() / 2]
        );
        let r = report_of(&log);
        assert_eq!(r.decisions, 1);
        assert_eq!(r.malformed_lines, 6, "{:?}", r.problems);
        assert!(
            r.problems[0].starts_with("log:1: not a log line"),
            "{:?}",
            r.problems
        );
        assert!(
            r.problems[2].starts_with("log:4: a decision without"),
            "{:?}",
            r.problems
        );
        assert!(r.problems[3].contains("expected u32"), "{:?}", r.problems);
        assert!(
            r.problems.last().unwrap().starts_with("log:8: torn"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_is_skipped_and_the_next_one_read() {
        let huge = "x".repeat(MAX_LINE * 3);
        let log = format!("{huge}\n{}\n", decision("t", "n", "ns", "p", "i", "[1]"));
        let r = report_of(&log);
        assert_eq!((r.lines, r.decisions, r.malformed_lines), (2, 1, 1));
        assert!(r.problems[0].contains("longer than"), "{:?}", r.problems);
        // Without any newline at all, too.
        let r = report_of(&huge);
        assert_eq!((r.lines, r.malformed_lines), (1, 1));
    }

    #[test]
    fn workloads_drop_generated_suffixes_only() {
        for (pod, want) in [
            ("web-7d4b9c8f6d-x2x9q", "web"),
            ("my-api-5c9b7f6d48-k8s2p", "my-api"),
            ("agent-k8s2p", "agent"),
            ("db-0", "db"),
            ("db-12", "db"),
            ("kep-example", "kep-example"),
            ("my-app", "my-app"),
            ("web-abcde", "web-abcde"),
            ("web", "web"),
            ("-x2x9q", "-x2x9q"),
            ("", ""),
        ] {
            assert_eq!(workload(pod), want, "{pod}");
        }
    }

    #[test]
    fn gzip_and_concatenated_members_are_read() {
        use std::io::Write;
        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let mut both = gz(&(decision("t1", "n1", "ns", "p", "i", "[1]") + "\n"));
        both.extend(gz(&(decision("t2", "n2", "ns", "p", "i", "[1]") + "\n")));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log.gz");
        std::fs::write(&path, &both).unwrap();
        let mut t = Tally::default();
        t.read("gz", open(&path).unwrap()).unwrap();
        let r = t.finish();
        assert_eq!(
            (r.decisions, r.rows.len(), r.rows[0].count, r.rows[0].nodes),
            (2, 1, 2, 2)
        );
    }
}
