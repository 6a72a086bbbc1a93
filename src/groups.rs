//! Pure parsing of an image's `/etc/passwd` and `/etc/group`, the way the CRI
//! runtimes that merge image groups parse them (containerd and CRI-O both use
//! runc's `libcontainer/user` parser): lines are trimmed, blank lines and lines
//! starting with `#` are skipped, fields are split on `:`, a numeric field that
//! does not parse counts as 0, member lists are split on `,`. Nothing here
//! fails or panics, whatever the bytes.
//!
//! Used only when the declared groups are not known (see `declared.rs`); then
//! the image groups are recomputed to be removed.

use std::collections::BTreeSet;

/// Who merged the image groups into A, as far as the spec tells. The callers
/// differ in two details that decide which image groups they add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// containerd's CRI plugin: looks the user up by the pod's `runAsUser`,
    /// which is uid 0 when unset; skips a group named like the user.
    Containerd,
    /// CRI-O, podman and anything else built on libcontainer's
    /// `GetExecUser`: looks the process uid up; skips the user's primary group.
    Other,
}

/// The groups an image grants `uid`, as `caller` computes them.
///
/// For containerd the uid it looked up is not in the spec (it is the pod's
/// `runAsUser`, or 0 when that is unset), so the groups of both `uid` and 0 are
/// returned: over-removal of a declared gid that the image also grants is the
/// documented fail-closed behaviour of this fallback.
pub fn image_groups(passwd: &[u8], group: &[u8], uid: u32, caller: Caller) -> BTreeSet<u32> {
    let uids: &[u32] = match caller {
        Caller::Containerd if uid != 0 => &[uid, 0],
        _ => &[uid],
    };
    let mut out = BTreeSet::new();
    for &u in uids {
        let Some(user) = find_user(passwd, u) else {
            continue;
        };
        for line in lines(group) {
            let mut fields = line.split(|&b| b == b':');
            let name = fields.next().unwrap_or_default();
            let _password = fields.next();
            let gid = go_atoi(fields.next().unwrap_or_default());
            let members = fields.next().unwrap_or_default();
            let skip = match caller {
                Caller::Containerd => name == user.name,
                Caller::Other => gid == user.gid,
            };
            if !skip && members.split(|&b| b == b',').any(|m| m == user.name) {
                out.insert(gid);
            }
        }
    }
    out
}

struct User<'a> {
    name: &'a [u8],
    gid: u32,
}

/// The first `/etc/passwd` entry with `uid`, as libcontainer's lookup returns it.
fn find_user(passwd: &[u8], uid: u32) -> Option<User<'_>> {
    lines(passwd).find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        let name = fields.next().unwrap_or_default();
        let _password = fields.next();
        let entry_uid = go_atoi(fields.next().unwrap_or_default());
        let gid = go_atoi(fields.next().unwrap_or_default());
        (entry_uid == uid).then_some(User { name, gid })
    })
}

/// Non-blank, non-comment lines, trimmed of ASCII white space (CRLF included).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty() && l[0] != b'#')
}

/// Go's `strconv.Atoi` as libcontainer uses it: optional sign, decimal digits,
/// anything else (or an overflow of int64) gives 0. The result is truncated to
/// 32 bits, as containerd's `uint32(g.Gid)` does.
fn go_atoi(field: &[u8]) -> u32 {
    let s = std::str::from_utf8(field).unwrap_or("");
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    s.parse::<i64>().map(|v| v as u32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PASSWD: &[u8] =
        b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";

    fn groups(group: &[u8], uid: u32, caller: Caller) -> Vec<u32> {
        image_groups(PASSWD, group, uid, caller)
            .into_iter()
            .collect()
    }

    #[test]
    fn kep_example() {
        let g = b"alice:x:1000:\ngroup-in-image:x:50000:alice\n";
        assert_eq!(groups(g, 1000, Caller::Other), vec![50000]);
    }

    #[test]
    fn containerd_also_counts_uid_zero_groups() {
        let g = b"wheel:x:10:root\ngroup-in-image:x:50000:alice\n";
        assert_eq!(groups(g, 1000, Caller::Containerd), vec![10, 50000]);
        assert_eq!(groups(g, 1000, Caller::Other), vec![50000]);
    }

    #[test]
    fn caller_specific_skips() {
        // containerd skips a group named like the user; libcontainer skips the primary gid.
        let g = b"alice:x:1001:alice\nprimary:x:1000:alice\n";
        assert_eq!(groups(g, 1000, Caller::Containerd), vec![1000]);
        assert_eq!(groups(g, 1000, Caller::Other), vec![1001]);
    }

    #[test]
    fn group_zero_and_tolerant_lines() {
        let g = b"# comment\n\n  root:x:0:alice  \r\nbad line\nx:x:notanumber:alice\ny:x:7:bob,alice\r\n";
        assert_eq!(groups(g, 1000, Caller::Other), vec![0, 7]);
    }

    #[test]
    fn first_passwd_entry_wins_and_unknown_uid_has_no_groups() {
        let p = b"bob:x:1000:1000::/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n";
        let g = b"a:x:1:alice\nb:x:2:bob\n";
        assert_eq!(image_groups(p, g, 1000, Caller::Other), [2].into());
        assert!(image_groups(p, g, 4242, Caller::Other).is_empty());
    }

    #[test]
    fn atoi_like_go() {
        assert_eq!(go_atoi(b"42"), 42);
        assert_eq!(go_atoi(b"+42"), 42);
        assert_eq!(go_atoi(b"-1"), u32::MAX);
        assert_eq!(go_atoi(b"4294967296"), 0);
        assert_eq!(go_atoi(b"99999999999999999999"), 0);
        assert_eq!(go_atoi(b" 1"), 0);
        assert_eq!(go_atoi(b""), 0);
        assert_eq!(go_atoi(b"\xff"), 0);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(p in prop::collection::vec(any::<u8>(), 0..512),
                                     g in prop::collection::vec(any::<u8>(), 0..512),
                                     uid in any::<u32>()) {
            let _ = image_groups(&p, &g, uid, Caller::Containerd);
            let _ = image_groups(&p, &g, uid, Caller::Other);
        }
    }
}
