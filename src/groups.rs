//! Pure parsing of an image's `/etc/passwd` and `/etc/group`, byte for byte as
//! runc's `libcontainer/user` parses them (containerd and CRI-O both use it,
//! and runc itself reads the container's `/etc/group` with it), and the
//! look-ups that containerd, CRI-O and runc make with it. Any difference from
//! the Go code would keep an image group, so each rule below is Go's:
//!
//! - `/etc/passwd` is read with `bufio.Scanner`: lines split on `\n`, a line
//!   of 64 KiB or more fails the whole file, and `#` lines are *not* comments;
//! - `/etc/group` is read with `bufio.Reader.ReadLine` in 4 KiB pieces: an
//!   unterminated last line whose pieces end exactly at the end of the file
//!   is dropped, and lines starting with `#` are comments;
//! - each line is trimmed of Unicode white space (`bytes.TrimSpace`), split
//!   on `:`; ids go through `strconv.Atoi` (64-bit, saturating on overflow,
//!   0 on a syntax error) and are compared as 64-bit integers; the gids a
//!   runtime writes into the spec are truncated to 32 bits (`uint32(gid)`).
//!
//! `tests/differential.rs` compares every function here with the Go code
//! itself on generated files. Nothing here panics, whatever the bytes.

use std::collections::BTreeSet;

/// Why libcontainer's parser refuses a file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "the image's /etc/passwd has a line of 65536 bytes or more, which libcontainer's parser refuses"
    )]
    PasswdLineTooLong,
}

/// A `/etc/passwd` entry: name and Go `int` ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a [u8],
    pub uid: i64,
    pub gid: i64,
}

/// A `/etc/group` entry: name, Go `int` gid and member list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    pub name: &'a [u8],
    pub gid: i64,
    pub members: Vec<&'a [u8]>,
}

/// `bufio.Scanner`'s largest token (`bufio.MaxScanTokenSize`).
const MAX_SCAN_TOKEN: usize = 64 * 1024;
/// `bufio.Reader`'s default buffer.
const READER_BUFFER: usize = 4096;

/// `ParsePasswdFilter` with no filter: every entry, in file order.
pub fn parse_passwd(data: &[u8]) -> Result<Vec<PasswdEntry<'_>>, ParseError> {
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        // The Scanner's buffer holds at most 64 KiB of one line, `\n` included.
        if line.len() >= MAX_SCAN_TOKEN {
            return Err(ParseError::PasswdLineTooLong);
        }
        let line = go_trim_space(line);
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split(|&b| b == b':');
        let name = fields.next().unwrap_or_default();
        let _password = fields.next();
        let uid = fields.next().map_or(0, |f| go_atoi(f).0);
        let gid = fields.next().map_or(0, |f| go_atoi(f).0);
        out.push(PasswdEntry { name, uid, gid });
    }
    Ok(out)
}

/// `ParseGroupFilter` with no filter: every entry, in file order.
pub fn parse_group(data: &[u8]) -> Vec<GroupEntry<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    'lines: loop {
        // A line arrives in pieces of at most 4 KiB, each starting where the
        // last ended; EOF in the middle of a line drops it.
        let start = pos;
        let end = loop {
            let Some((end, more)) = read_line(data, &mut pos) else {
                break 'lines;
            };
            if !more {
                break end;
            }
        };
        out.extend(parse_group_line(&data[start..end]));
    }
    out
}

/// `bufio.Reader.ReadLine` over `data` from `pos`: where the next line or
/// piece of a line ends (without its `\n` or `\r\n`), and whether more of
/// the line follows.
fn read_line(data: &[u8], pos: &mut usize) -> Option<(usize, bool)> {
    let rest = &data[*pos..];
    if rest.is_empty() {
        return None;
    }
    let window = &rest[..rest.len().min(READER_BUFFER)];
    let start = *pos;
    if let Some(i) = window.iter().position(|&b| b == b'\n') {
        *pos += i + 1;
        let end = start + i;
        return Some((
            if i > 0 && data[end - 1] == b'\r' {
                end - 1
            } else {
                end
            },
            false,
        ));
    }
    if rest.len() >= READER_BUFFER {
        // Buffer full: a piece. A `\r` at its end is put back for the next
        // piece, in case a `\n` follows.
        let len = READER_BUFFER - usize::from(window[READER_BUFFER - 1] == b'\r');
        *pos += len;
        return Some((start + len, true));
    }
    *pos = data.len();
    Some((data.len(), false))
}

fn parse_group_line(line: &[u8]) -> Option<GroupEntry<'_>> {
    let line = go_trim_space(line);
    if line.is_empty() || line[0] == b'#' {
        return None;
    }
    let mut fields = line.split(|&b| b == b':');
    let name = fields.next().unwrap_or_default();
    let _password = fields.next();
    let gid = fields.next().map_or(0, |f| go_atoi(f).0);
    let members = match fields.next() {
        Some(list) if !list.is_empty() => list.split(|&b| b == b',').collect(),
        _ => Vec::new(),
    };
    Some(GroupEntry { name, gid, members })
}

/// Go's `bytes.TrimSpace`: leading and trailing Unicode white space, runes
/// decoded as Go decodes them (an invalid byte is U+FFFD, not space).
pub fn go_trim_space(mut s: &[u8]) -> &[u8] {
    while let Some((c, width)) = first_rune(s) {
        if !c.is_whitespace() {
            break;
        }
        s = &s[width..];
    }
    while let Some((c, width)) = last_rune(s) {
        if !c.is_whitespace() {
            break;
        }
        s = &s[..s.len() - width];
    }
    s
}

/// `utf8.DecodeRune`: the first rune and its width (U+FFFD, 1 if invalid).
fn first_rune(s: &[u8]) -> Option<(char, usize)> {
    let chunk = &s[..s.len().min(4)];
    let valid = match std::str::from_utf8(chunk) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&chunk[..e.valid_up_to()]).unwrap_or(""),
    };
    match valid.chars().next() {
        Some(c) => Some((c, c.len_utf8())),
        None if s.is_empty() => None,
        None => Some((char::REPLACEMENT_CHARACTER, 1)),
    }
}

/// `utf8.DecodeLastRune`: the last rune and its width (U+FFFD, 1 if invalid).
fn last_rune(s: &[u8]) -> Option<(char, usize)> {
    let end = s.len();
    let last = *s.last()?;
    if last < 0x80 {
        return Some((last as char, 1));
    }
    let lim = end.saturating_sub(4);
    let mut start = end - 1;
    while start > lim && (s[start] & 0xC0) == 0x80 {
        start -= 1;
    }
    let decoded = std::str::from_utf8(&s[start..end]).ok().and_then(|t| {
        let mut chars = t.chars();
        let c = chars.next()?;
        chars.next().is_none().then_some(c)
    });
    Some(match decoded {
        Some(c) => (c, end - start),
        None => (char::REPLACEMENT_CHARACTER, 1),
    })
}

/// Go's `strconv.Atoi` on a 64-bit platform: the value and whether it
/// parsed. A syntax error gives 0; an overflow saturates (and is an error).
pub fn go_atoi(s: &[u8]) -> (i64, bool) {
    let (negative, digits) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return (0, false);
    }
    let mut n: u64 = 0;
    let mut overflow = false;
    for &c in digits {
        if !c.is_ascii_digit() {
            return (0, false);
        }
        // ParseUint stops at the first overflow, before any later syntax error.
        match n
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(c - b'0')))
        {
            Some(m) => n = m,
            None => {
                overflow = true;
                break;
            }
        }
    }
    const CUTOFF: u64 = 1 << 63;
    match (negative, overflow) {
        (false, true) => (i64::MAX, false),
        (true, true) => (i64::MIN, false),
        (false, false) if n >= CUTOFF => (i64::MAX, false),
        (false, false) => (n as i64, true),
        (true, false) if n > CUTOFF => (i64::MIN, false),
        (true, false) => ((n as i64).wrapping_neg(), true),
    }
}

/// The image groups that containerd 1.6/1.7 add for `userstr`
/// (`oci.WithAdditionalGIDs`): a uid is looked up in `/etc/passwd` (first
/// entry wins), a name is used as it is; then every group that lists the name,
/// but a group named like the user, in `/etc/group` order. A missing file,
/// or a uid with no entry, gives no groups.
pub fn containerd_groups(
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
    userstr: &[u8],
) -> Result<Vec<u32>, ParseError> {
    let username: &[u8] = match go_atoi(userstr) {
        (uid, true) => {
            let Some(passwd) = passwd else {
                return Ok(Vec::new());
            };
            match parse_passwd(passwd)?.into_iter().find(|u| u.uid == uid) {
                Some(user) => user.name,
                None => return Ok(Vec::new()),
            }
        }
        _ => userstr,
    };
    let Some(group) = group else {
        return Ok(Vec::new());
    };
    Ok(parse_group(group)
        .into_iter()
        .filter(|g| g.name != username && g.members.contains(&username))
        .map(|g| g.gid as u32)
        .collect())
}

/// What CRI-O (before 1.31) computes for `userspec` with libcontainer's
/// `GetExecUser`: the uid it writes (`uint32`) and the image groups. Errors
/// where `GetExecUser` fails (CRI-O then fails the container).
pub fn crio_user(
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
    userspec: &[u8],
) -> Result<(u32, Vec<u32>), CrioError> {
    let mut parts = userspec.split(|&b| b == b':');
    let user_arg = parts.next().unwrap_or_default();
    let group_arg = parts.next().unwrap_or_default();
    let (uid_arg, uid_numeric) = go_atoi(user_arg);
    let users = match passwd {
        Some(p) => parse_passwd(p).map_err(CrioError::Parse)?,
        None => Vec::new(),
    };
    let matched = users.into_iter().find(|u| {
        if user_arg.is_empty() {
            u.uid == 0
        } else if uid_numeric {
            u.uid == uid_arg
        } else {
            u.name == user_arg
        }
    });
    let (uid, name): (i64, &[u8]) = match matched {
        Some(u) => (u.uid, u.name),
        None if user_arg.is_empty() => (0, b""),
        None if !uid_numeric => return Err(CrioError::NoSuchUser),
        None if !(0..=MAX_ID).contains(&uid_arg) => return Err(CrioError::Range),
        None => (uid_arg, b""),
    };
    let mut sgids = Vec::new();
    if group_arg.is_empty() && !name.is_empty() {
        if let Some(group) = group {
            sgids = parse_group(group)
                .into_iter()
                .filter(|g| g.members.contains(&name))
                .map(|g| g.gid as u32)
                .collect();
        }
    } else if !group_arg.is_empty() {
        // The explicit `user:group` form: no supplementary groups. Its gid
        // may still be out of range, which fails the container.
        let (gid_arg, gid_numeric) = go_atoi(group_arg);
        let found = group.is_some_and(|g| {
            parse_group(g).into_iter().any(|e| {
                if gid_numeric {
                    e.gid == gid_arg
                } else {
                    e.name == group_arg
                }
            })
        });
        if !found {
            if !gid_numeric {
                return Err(CrioError::NoSuchGroup);
            }
            if !(0..=MAX_ID).contains(&gid_arg) {
                return Err(CrioError::Range);
            }
        }
    }
    Ok((uid as u32, sgids))
}

/// libcontainer's id range (`minID`..`maxID`).
const MAX_ID: i64 = (1 << 31) - 1;

/// Why libcontainer's `GetExecUser` fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrioError {
    #[error(transparent)]
    Parse(ParseError),
    #[error("no such user")]
    NoSuchUser,
    #[error("no such group")]
    NoSuchGroup,
    #[error("id out of range")]
    Range,
}

/// Whose rules computed the image groups in A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// containerd's CRI plugin (1.6 and 1.7).
    Containerd,
    /// CRI-O's `GetExecUser`.
    Crio,
    /// Not known: both, so that neither's groups survive.
    Both,
}

/// The image groups to remove from A for a process running as `uid`, when D
/// is unknown: the union over every look-up that the runtime could have made
/// and that gives `uid`. The uid itself and every entry's uid that truncates
/// to it (the kubelet passes an image's numeric `USER` on as a 64-bit
/// `runAsUser`); every name whose first entry has that uid (the kubelet sends
/// the image's `USER` name, and the runtime looks it up by name); for
/// containerd also uid 0, which containerd 1.6 looks up when the pod sets no
/// `runAsUser` (1.7 looks up the image's `USER`, one of the names above).
/// Over-removal of a declared gid is the fail-closed cost.
pub fn image_groups(
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
    uid: u32,
    rules: Rules,
) -> Result<BTreeSet<u32>, ParseError> {
    let mut lookups: Vec<Vec<u8>> = vec![uid.to_string().into_bytes()];
    if let Some(passwd) = passwd {
        let entries = parse_passwd(passwd)?;
        let mut names: Vec<&[u8]> = Vec::new();
        for e in &entries {
            if e.uid as u32 == uid {
                lookups.push(e.uid.to_string().into_bytes());
            }
            if !names.contains(&e.name) {
                names.push(e.name);
                // The first entry of a name decides its uid.
                if e.uid as u32 == uid && !e.name.is_empty() {
                    lookups.push(e.name.to_vec());
                }
            }
        }
    }
    lookups.sort();
    lookups.dedup();
    let mut out = BTreeSet::new();
    if rules != Rules::Crio {
        for lookup in lookups.iter().map(Vec::as_slice).chain([b"0".as_slice()]) {
            out.extend(containerd_groups(passwd, group, lookup)?);
        }
    }
    if rules != Rules::Containerd {
        for lookup in &lookups {
            if let Ok((_, gids)) = crio_user(passwd, group, lookup) {
                out.extend(gids);
            }
        }
    }
    Ok(out)
}

/// The supplementary groups runc before 1.3 gives for `additional_gids`
/// (libcontainer's `GetAdditionalGroups`): each gid, as a decimal string, is
/// looked up in the container's `/etc/group` by name *or* gid, first match
/// not already taken wins; one with no match stays the number. None where
/// runc fails the container (a gid out of its range).
pub fn runc_additional_groups(
    group: Option<&[u8]>,
    additional_gids: &[u32],
) -> Option<BTreeSet<i64>> {
    let wanted: Vec<String> = additional_gids.iter().map(u32::to_string).collect();
    let entries: Vec<GroupEntry> = group
        .map(|g| {
            parse_group(g)
                .into_iter()
                .filter(|e| wanted.iter().any(|w| matches_group(e, w)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for w in &wanted {
        let taken = entries
            .iter()
            .find(|e| matches_group(e, w) && !out.contains(&e.gid));
        match taken {
            Some(e) => {
                out.insert(e.gid);
            }
            None => {
                let (gid, ok) = go_atoi(w.as_bytes());
                if !ok || !(0..=MAX_ID).contains(&gid) {
                    return None;
                }
                out.insert(gid);
            }
        }
    }
    Some(out)
}

fn matches_group(e: &GroupEntry, wanted: &str) -> bool {
    e.name == wanted.as_bytes() || e.gid.to_string() == wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PASSWD: &[u8] =
        b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";

    fn groups(passwd: &[u8], group: &[u8], uid: u32, rules: Rules) -> Vec<u32> {
        image_groups(Some(passwd), Some(group), uid, rules)
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn kep_example() {
        let g = b"alice:x:1000:\ngroup-in-image:x:50000:alice\n";
        for rules in [Rules::Containerd, Rules::Crio, Rules::Both] {
            assert_eq!(groups(PASSWD, g, 1000, rules), vec![50000]);
        }
    }

    #[test]
    fn containerd_also_counts_uid_zero_groups() {
        let g = b"wheel:x:10:root\ngroup-in-image:x:50000:alice\n";
        assert_eq!(groups(PASSWD, g, 1000, Rules::Containerd), vec![10, 50000]);
        assert_eq!(groups(PASSWD, g, 1000, Rules::Crio), vec![50000]);
    }

    #[test]
    fn containerd_skips_a_group_named_like_the_user_crio_does_not() {
        let g = b"alice:x:1001:alice\nprimary:x:1000:alice\n";
        assert_eq!(
            containerd_groups(Some(PASSWD), Some(g), b"1000").unwrap(),
            vec![1000]
        );
        assert_eq!(
            crio_user(Some(PASSWD), Some(g), b"1000").unwrap(),
            (1000, vec![1001, 1000])
        );
    }

    /// Each case that kept gid 50000 for alice with the old parser.
    #[test]
    fn named_regressions_of_the_old_parser() {
        let alice = "alice:x:1000:1000::/:/bin/sh\n";
        let cases: Vec<(String, String)> = vec![
            // Go trims Unicode white space.
            (alice.into(), "secret:x:50000:alice\u{b}\n".into()),
            (alice.into(), "secret:x:50000:alice\u{a0}\n".into()),
            (alice.into(), "secret:x:50000:alice\u{3000}\n".into()),
            (format!("\u{b}{alice}"), "secret:x:50000:alice\n".into()),
            // '#' lines of passwd are entries.
            (
                format!("#x:x:1000:1000::/:/bin/sh\n{alice}"),
                "secret:x:50000:#x\n".into(),
            ),
            // 64-bit uid compare: 4294968296 is not 1000 (but truncates to it).
            (
                format!("ghost:x:4294968296:0::/:/bin/sh\n{alice}"),
                "secret:x:50000:alice\n".into(),
            ),
            // Two entries with uid 1000: the image USER may name either.
            (
                format!("bob:x:1000:1000::/:/bin/sh\n{alice}"),
                "secret:x:50000:alice\n".into(),
            ),
        ];
        for (passwd, group) in &cases {
            for rules in [Rules::Containerd, Rules::Crio, Rules::Both] {
                let got = groups(passwd.as_bytes(), group.as_bytes(), 1000, rules);
                assert!(
                    got.contains(&50000),
                    "{rules:?} {passwd:?} {group:?}: {got:?}"
                );
            }
        }
        // Go's Atoi saturates: the gid containerd writes is uint32(MaxInt64).
        let got = groups(
            alice.as_bytes(),
            b"secret:x:99999999999999999999:alice\n",
            1000,
            Rules::Both,
        );
        assert_eq!(got, vec![u32::MAX]);
    }

    #[test]
    fn atoi_like_go() {
        assert_eq!(go_atoi(b"42"), (42, true));
        assert_eq!(go_atoi(b"+42"), (42, true));
        assert_eq!(go_atoi(b"-1"), (-1, true));
        assert_eq!(go_atoi(b"4294967296"), (4294967296, true));
        assert_eq!(go_atoi(b"99999999999999999999"), (i64::MAX, false));
        assert_eq!(go_atoi(b"-99999999999999999999"), (i64::MIN, false));
        assert_eq!(go_atoi(b"9223372036854775808"), (i64::MAX, false));
        assert_eq!(go_atoi(b"-9223372036854775808"), (i64::MIN, true));
        // ParseUint stops at the overflow before it sees the bad byte.
        assert_eq!(go_atoi(b"99999999999999999999x"), (i64::MAX, false));
        assert_eq!(go_atoi(b"9x"), (0, false));
        assert_eq!(go_atoi(b" 1"), (0, false));
        assert_eq!(go_atoi(b""), (0, false));
        assert_eq!(go_atoi(b"+"), (0, false));
        assert_eq!(go_atoi(b"1_000"), (0, false));
        assert_eq!(go_atoi(b"\xff"), (0, false));
    }

    #[test]
    fn trim_space_like_go() {
        assert_eq!(go_trim_space(b" \t\r\n\x0b\x0cx \x0b"), b"x");
        assert_eq!(
            go_trim_space("\u{85}\u{a0}x\u{2028}\u{3000}".as_bytes()),
            b"x"
        );
        // U+200B is not white space; an invalid byte stops the trim.
        assert_eq!(
            go_trim_space("x\u{200b}".as_bytes()),
            "x\u{200b}".as_bytes()
        );
        assert_eq!(go_trim_space(b"\xa0x\xa0"), b"\xa0x\xa0");
        assert_eq!(go_trim_space(b"x\xc2"), b"x\xc2");
        assert_eq!(go_trim_space(b"   "), b"");
    }

    #[test]
    fn passwd_line_of_64_kib_fails_the_file() {
        let long = format!("{}\nalice:x:1000:1000::/:/bin/sh\n", "a".repeat(65535));
        assert_eq!(parse_passwd(long.as_bytes()).unwrap().len(), 2);
        let too_long = format!("{}\n", "a".repeat(65536));
        assert_eq!(
            parse_passwd(too_long.as_bytes()),
            Err(ParseError::PasswdLineTooLong)
        );
    }

    #[test]
    fn group_lines_in_pieces() {
        // A last line without `\n` of exactly 4096 bytes is dropped by ReadLine.
        let line = format!("g:x:7:alice{}", ",".repeat(4096 - 11));
        assert_eq!(line.len(), 4096);
        assert!(parse_group(line.as_bytes()).is_empty());
        assert_eq!(parse_group(format!("{line}\n").as_bytes()).len(), 1);
        assert_eq!(parse_group(format!("{line},").as_bytes()).len(), 1);
        // CRLF and a `\r` at a piece boundary.
        let crlf = format!("{}\r\ng:x:8:alice\r\n", "#".repeat(4095));
        let got: Vec<i64> = parse_group(crlf.as_bytes()).iter().map(|g| g.gid).collect();
        assert_eq!(got, vec![8]);
    }

    #[test]
    fn runc_name_lookup() {
        let g = b"1000:x:0:\n60000:x:50000:\n";
        assert_eq!(
            runc_additional_groups(Some(g), &[1000, 60000]),
            Some([0, 50000].into())
        );
        assert_eq!(
            runc_additional_groups(Some(b"alice:x:1000:\n"), &[1000, 60000]),
            Some([1000, 60000].into())
        );
        assert_eq!(runc_additional_groups(None, &[5]), Some([5].into()));
        assert_eq!(runc_additional_groups(None, &[u32::MAX]), None);
        // A name already taken falls through to the next match.
        let g = b"x:x:7:\n7:x:9:\n";
        assert_eq!(
            runc_additional_groups(Some(g), &[7, 7]),
            Some([7, 9].into())
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(p in prop::collection::vec(any::<u8>(), 0..512),
                                     g in prop::collection::vec(any::<u8>(), 0..512),
                                     uid in any::<u32>()) {
            for rules in [Rules::Containerd, Rules::Crio, Rules::Both] {
                let _ = image_groups(Some(&p), Some(&g), uid, rules);
            }
            let _ = runc_additional_groups(Some(&g), &[uid]);
        }
    }
}
