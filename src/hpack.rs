//! An HPACK decoder (RFC 7541) for the headers of one gRPC reply.
//!
//! The reply comes from containerd, but the wrapper runs on every create
//! and must neither abort nor balloon on whatever bytes arrive: every
//! malformed block (a truncated integer, an index past the table, a string
//! longer than the block, bad Huffman padding, a table size over the limit)
//! is an error, and a block that decodes to more than the caller's cap is
//! refused before it is all decoded (an indexed field of one byte can stand
//! for a 4 KiB table entry). Only the fields the caller asks for are handed
//! out; the dynamic table is kept so that later blocks decode correctly.

use std::borrow::Cow;
use std::collections::VecDeque;

/// The dynamic table size every HTTP/2 peer starts with
/// (SETTINGS_HEADER_TABLE_SIZE), which the client never raises.
pub const TABLE_SIZE: usize = 4096;

/// What an entry costs in the table and in a header list (RFC 7541, 4.1).
const ENTRY_OVERHEAD: usize = 32;

#[derive(Debug)]
pub struct Decoder {
    /// Newest entry first, as HPACK indexes them.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// The table's current size, and the maximum the peer set.
    size: usize,
    max: usize,
    /// The maximum the peer may set (our SETTINGS_HEADER_TABLE_SIZE).
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::with_limit(TABLE_SIZE)
    }
}

impl Decoder {
    pub fn with_limit(limit: usize) -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: limit,
            limit,
        }
    }

    /// Decodes one complete header block, calling `field` with each field
    /// in order. Fails once the fields' size (as HTTP/2 counts it: name,
    /// value and 32 each) passes `max_list`.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list: usize,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), String> {
        let mut input = Input(block);
        let mut list = 0usize;
        let mut fields_seen = false;
        while let Some(&first) = input.0.first() {
            if first & 0xe0 == 0x20 {
                // Dynamic table size update: only before the first field.
                let size = input.integer(5)?;
                if fields_seen {
                    return Err("a table size update after a field".into());
                }
                if size > self.limit {
                    return Err(format!(
                        "a table size of {size} (the limit is {})",
                        self.limit
                    ));
                }
                self.max = size;
                self.evict(0);
                continue;
            }
            fields_seen = true;
            if first & 0x80 != 0 {
                let (n, v) = self.entry(input.integer(7)?)?;
                list = count(list, n.len() + v.len(), max_list)?;
                field(n, v);
                continue;
            }
            // A literal: 01 with indexing (6-bit index of its name),
            // 0000 and 0001 without (4-bit index); index 0, a literal name.
            // Each string is refused as soon as it cannot fit in what is
            // left of the list, before it is decoded in full.
            let index = first & 0x40 != 0;
            let i = input.integer(if index { 6 } else { 4 })?;
            let room = max_list.saturating_sub(list + ENTRY_OVERHEAD);
            let name: Cow<[u8]> = match i {
                0 => Cow::Owned(input.string(room)?),
                i => Cow::Borrowed(self.entry(i)?.0),
            };
            let value = input.string(room.saturating_sub(name.len()))?;
            list = count(list, name.len() + value.len(), max_list)?;
            field(&name, &value);
            if index {
                let name = name.into_owned();
                self.insert(name, value);
            }
        }
        Ok(())
    }

    /// The field at HPACK index `i`: the static table, then the dynamic.
    fn entry(&self, i: usize) -> Result<(&[u8], &[u8]), String> {
        if let Some(&(n, v)) = i.checked_sub(1).and_then(|i| STATIC.get(i)) {
            return Ok((n.as_bytes(), v.as_bytes()));
        }
        self.table
            .get(i.wrapping_sub(STATIC.len() + 1))
            .filter(|_| i > STATIC.len())
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .ok_or_else(|| format!("index {i} is not in the table"))
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        // An entry larger than the table empties it and is not added (4.4).
        self.evict(size.min(self.max + 1));
        if size <= self.max {
            self.size += size;
            self.table.push_front((name, value));
        }
    }

    /// Drops the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            let Some((n, v)) = self.table.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }
}

/// The header list's size with one more field of `len` bytes, if within `max_list`.
fn count(list: usize, len: usize, max_list: usize) -> Result<usize, String> {
    let list = list + len + ENTRY_OVERHEAD;
    if list > max_list {
        return Err(format!("a header list larger than {max_list} bytes"));
    }
    Ok(list)
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.0.split_first().ok_or("a truncated header block")?;
        self.0 = rest;
        Ok(b)
    }

    /// An integer with an `n`-bit prefix (5.1). Values past 2^28 are
    /// refused: no length or index this decoder accepts comes near.
    fn integer(&mut self, n: u32) -> Result<usize, String> {
        let max = (1usize << n) - 1;
        let mut value = (self.byte()? as usize) & max;
        if value < max {
            return Ok(value);
        }
        for shift in (0..28).step_by(7) {
            let b = self.byte()?;
            value += ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("an integer larger than 2^28 in a header block".into())
    }

    /// A string literal (5.2), Huffman-coded or not, of at most `max`
    /// bytes decoded.
    fn string(&mut self, max: usize) -> Result<Vec<u8>, String> {
        let huffman = self.0.first().is_some_and(|b| b & 0x80 != 0);
        let len = self.integer(7)?;
        if len > self.0.len() {
            return Err("a string longer than its header block".into());
        }
        // Decoded, a string has its raw length, or Huffman-coded at least
        // 8 bits per 30 (the longest code).
        if (if huffman { len * 8 / 30 } else { len }) > max {
            return Err(TOO_LARGE.into());
        }
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        if huffman {
            huffman_decode(bytes, max)
        } else {
            Ok(bytes.to_vec())
        }
    }
}

/// The length of each symbol's code (Appendix B), symbols 0..=255 and EOS
/// (256). The code is canonical, so the lengths define it.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MAX_CODE: usize = 30;

/// The canonical code, for decoding: per length, the first code, how many
/// codes have it, and where its symbols start in `symbols`.
struct Canonical {
    first: [u32; MAX_CODE + 1],
    count: [u32; MAX_CODE + 1],
    offset: [u16; MAX_CODE + 1],
    /// The symbols by (length, value).
    symbols: [u16; 257],
}

const CANONICAL: Canonical = {
    let mut c = Canonical {
        first: [0; MAX_CODE + 1],
        count: [0; MAX_CODE + 1],
        offset: [0; MAX_CODE + 1],
        symbols: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        c.count[CODE_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let (mut code, mut at, mut len) = (0u32, 0u16, 1);
    while len <= MAX_CODE {
        c.first[len] = code;
        c.offset[len] = at;
        let mut s = 0;
        while s < 257 {
            if CODE_LENGTHS[s] as usize == len {
                c.symbols[at as usize] = s as u16;
                at += 1;
            }
            s += 1;
        }
        code = (code + c.count[len]) << 1;
        len += 1;
    }
    c
};

const TOO_LARGE: &str = "a header field larger than what is left of the header list's limit";

/// A Huffman-coded string (5.2) of at most `max` bytes decoded: EOS inside,
/// padding longer than 7 bits or not all ones are errors.
fn huffman_decode(bytes: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let c = &CANONICAL;
    let mut out = Vec::with_capacity((bytes.len() * 8 / 5).min(max));
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in bytes {
        for bit in (0..8).rev() {
            code = code << 1 | u32::from(byte >> bit & 1);
            len += 1;
            let i = code.wrapping_sub(c.first[len]);
            if i < c.count[len] {
                let symbol = c.symbols[(c.offset[len] as u32 + i) as usize];
                if symbol == EOS {
                    return Err("EOS inside a Huffman-coded string".into());
                }
                if out.len() == max {
                    return Err(TOO_LARGE.into());
                }
                out.push(symbol as u8);
                (code, len) = (0, 0);
            } else if len == MAX_CODE {
                return Err("an invalid Huffman code".into());
            }
        }
    }
    if len > 7 || code != (1 << len) - 1 {
        return Err("invalid padding of a Huffman-coded string".into());
    }
    Ok(out)
}

/// The static table (Appendix A), index 1 first.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        d.decode(block, 1 << 20, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        Ok(out)
    }

    fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// RFC 7541, C.4: requests with Huffman coding on one connection.
    #[test]
    fn rfc_requests_with_huffman() {
        let mut d = Decoder::default();
        let base = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ];
        let got = decode(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).unwrap();
        assert_eq!(got, fields(&base));
        let got = decode(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap();
        let mut want = base.to_vec();
        want.push(("cache-control", "no-cache"));
        assert_eq!(got, fields(&want));
        let block = "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf";
        let got = decode(&mut d, &hex(block)).unwrap();
        let want = [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ];
        assert_eq!(got, fields(&want));
        assert_eq!(d.size, 164);
    }

    /// RFC 7541, C.6: responses with Huffman coding and a 256-byte table,
    /// so that entries are evicted.
    #[test]
    fn rfc_responses_with_huffman_and_eviction() {
        let mut d = Decoder::with_limit(256);
        let r1 = "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                  2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3";
        let date = ("date", "Mon, 21 Oct 2013 20:13:21 GMT");
        let location = ("location", "https://www.example.com");
        let got = decode(&mut d, &hex(r1)).unwrap();
        let want = [
            (":status", "302"),
            ("cache-control", "private"),
            date,
            location,
        ];
        assert_eq!(got, fields(&want));
        assert_eq!(d.size, 222);
        let got = decode(&mut d, &hex("4883 640e ffc1 c0bf")).unwrap();
        let want = [
            (":status", "307"),
            ("cache-control", "private"),
            date,
            location,
        ];
        assert_eq!(got, fields(&want));
        let r3 = "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                  77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                  9587 3160 65c0 03ed 4ee5 b106 3d50 07";
        let got = decode(&mut d, &hex(r3)).unwrap();
        let want = [
            (":status", "200"),
            ("cache-control", "private"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
            location,
            ("content-encoding", "gzip"),
            (
                "set-cookie",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ];
        assert_eq!(got, fields(&want));
        assert_eq!(d.size, 215);
        assert_eq!(d.table.len(), 3);
    }

    #[test]
    fn malformed_blocks_are_errors() {
        for (block, why) in [
            ("3f", "truncated"),
            ("3fe21f", "a table size of 4097"),
            ("80", "index 0 is not"),
            ("be", "index 62 is not"),
            ("ff", "truncated"),
            ("ffffffffffff7f", "larger than 2^28"),
            ("000361626303", "a string longer than"),
            ("00", "truncated"),
            ("000161 8185", "invalid padding"),
            ("000161 84ffffffff", "EOS inside"),
            ("000161 82ffff", "invalid padding"),
            ("82 20", "a table size update after a field"),
        ] {
            let mut d = Decoder::default();
            let err = decode(&mut d, &hex(block)).unwrap_err();
            assert!(err.contains(why), "{block}: {err}, not {why}");
        }
    }

    /// One byte per field, each naming a 4 KiB entry: refused at the cap
    /// without building the whole list.
    #[test]
    fn a_header_list_bomb_is_refused_at_the_cap() {
        // A literal with indexing: name "a", a value of 4000 bytes.
        let mut block = vec![0x40, 0x01, b'a', 0x7f];
        let mut rest = 4000 - 127;
        while rest >= 128 {
            block.push((rest % 128 + 128) as u8);
            rest /= 128;
        }
        block.push(rest as u8);
        block.extend(std::iter::repeat_n(b'x', 4000));
        block.extend(std::iter::repeat_n(0xbe, 100_000)); // index 62, 100k times
        let mut d = Decoder::default();
        let mut calls = 0;
        let err = d.decode(&block, 65_536, |_, _| calls += 1).unwrap_err();
        assert!(err.contains("65536"), "{err}");
        assert!(calls <= 16, "{calls}");
    }

    /// One literal larger than the list's limit is refused before it is
    /// decoded: raw, or Huffman-coded (8 of its bits per 30 at least).
    #[test]
    fn a_literal_past_the_cap_is_refused_before_decoding() {
        for huffman in [0x00u8, 0x80] {
            let mut block = vec![0x00, 0x01, b'a', huffman | 0x7f];
            let mut rest = 1_000_000 - 127;
            while rest >= 128 {
                block.push((rest % 128 + 128) as u8);
                rest /= 128;
            }
            block.push(rest as u8);
            block.extend(std::iter::repeat_n(b'a', 1_000_000));
            let err = Decoder::default()
                .decode(&block, 65_536, |_, _| {})
                .unwrap_err();
            assert_eq!(err, TOO_LARGE);
        }
    }

    /// Every byte value, coded with the canonical code built here from the
    /// lengths by sorting (not from the decoder's tables), decodes back:
    /// codes of every length up to 30 bits, and the padding after them.
    #[test]
    fn every_byte_value_round_trips_through_huffman() {
        let mut order: Vec<usize> = (0..257).collect();
        order.sort_by_key(|&s| (CODE_LENGTHS[s], s));
        let mut codes = [0u32; 257];
        let (mut code, mut prev) = (0u32, CODE_LENGTHS[order[0]]);
        for (i, &s) in order.iter().enumerate() {
            if i > 0 {
                code = (code + 1) << (CODE_LENGTHS[s] - prev);
            }
            prev = CODE_LENGTHS[s];
            codes[s] = code;
        }
        assert_eq!(
            codes[b'a' as usize], 0x3,
            "RFC 7541 Appendix B: 'a' is 00011"
        );
        assert_eq!(codes[256], 0x3fff_ffff, "EOS is 30 ones");
        for text in [
            (0..=255u8).collect::<Vec<u8>>(),
            b"grpc-status".to_vec(),
            vec![0xff; 3],
        ] {
            let (mut bits, mut n, mut out) = (0u64, 0u32, Vec::new());
            for &b in &text {
                bits = bits << CODE_LENGTHS[b as usize] | u64::from(codes[b as usize]);
                n += u32::from(CODE_LENGTHS[b as usize]);
                while n >= 8 {
                    n -= 8;
                    out.push((bits >> n) as u8);
                }
            }
            if n > 0 {
                out.push((bits << (8 - n)) as u8 | (0xff >> n));
            }
            assert_eq!(huffman_decode(&out, usize::MAX).unwrap(), text);
        }
    }

    /// A deterministic pseudo-random sequence (xorshift64), for tests
    /// that draw many inputs and must fail the same way each run.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Whatever the bytes, decoding returns (never panics), a decoded list
    /// never passes the cap and the table never its size. Blocks are drawn
    /// from bytes that start each representation, so that most go deep.
    #[test]
    fn arbitrary_blocks_never_panic() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        const STARTS: [u8; 8] = [0x3f, 0xff, 0x40, 0x80 | 62, 0x00, 0x10, 0x7f, 0x20];
        for _ in 0..200_000 {
            let mut d = Decoder::with_limit(64);
            for _ in 0..2 {
                let len = next() % 48;
                let block: Vec<u8> = (0..len)
                    .map(|_| match next() % 4 {
                        0 => STARTS[(next() % 8) as usize],
                        _ => next() as u8,
                    })
                    .collect();
                let mut list = 0;
                let _ = d.decode(&block, 512, |n, v| list += n.len() + v.len() + 32);
                assert!(list <= 512, "{block:02x?}");
                assert!(d.size <= d.max && d.max <= 64, "{block:02x?}");
                let sizes: usize = d.table.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
                assert_eq!(sizes, d.size, "{block:02x?}");
            }
        }
    }

    /// Header lists encoded by another implementation (fluke-hpack's
    /// encoder, which indexes every field) on one connection decode to the
    /// same lists: the dynamic table stays in step through evictions.
    #[test]
    fn lists_from_another_encoder_round_trip() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let mut encoder = fluke_hpack::Encoder::new();
        let mut d = Decoder::default();
        let names = [
            ":status",
            "grpc-status",
            "grpc-message",
            "content-type",
            "x-a",
            "x-b",
        ];
        for _ in 0..2_000 {
            let list: Vec<(Vec<u8>, Vec<u8>)> = (0..next() % 6)
                .map(|_| {
                    let name = names[(next() % 6) as usize].as_bytes().to_vec();
                    let value = (0..next() % 900)
                        .map(|_| b'a' + (next() % 3) as u8)
                        .collect();
                    (name, value)
                })
                .collect();
            let block = encoder.encode(list.iter().map(|(n, v)| (&n[..], &v[..])));
            let mut got = Vec::new();
            d.decode(&block, 1 << 20, |n, v| got.push((n.to_vec(), v.to_vec())))
                .unwrap();
            assert_eq!(got, list);
        }
    }
}
