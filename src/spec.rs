//! Pure reading and rewriting of an OCI `config.json` (or of the process
//! file of an exec), limited to what the wrapper needs.
//!
//! The document is never re-serialised: the wrapper finds the byte span of
//! `user.additionalGids` and replaces only that span, keeping the original
//! elements' text and separators. Every other byte of the file survives, so
//! keys, order, numbers and formatting are exactly as the CRI runtime wrote
//! them. Keys are matched the way runc's Go decoder matches struct fields
//! (case-insensitively), and an object holding the same key twice is refused:
//! the wrapper and the runtime must not read different values.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

fn field_error(path: &str, message: impl fmt::Display) -> SpecError {
    SpecError::Field {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// The user of a process: `uid`, `gid` and `additionalGids` (A), with where
/// A sits in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    span: Option<GidsSpan>,
}

impl User {
    /// Does the document hold an `additionalGids` array that can be rewritten?
    pub fn has_gids_array(&self) -> bool {
        self.span.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GidsSpan {
    /// Byte range of the array, brackets included.
    start: usize,
    end: usize,
    /// Byte range of each element.
    elements: Vec<(usize, usize)>,
}

/// What the wrapper reads from a container's `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub user: User,
    pub annotations: HashMap<String, String>,
    /// `root.path`, relative to the bundle unless absolute.
    pub root_path: Option<String>,
    /// `mounts[].destination`, in order.
    pub mount_destinations: Vec<String>,
}

impl Config {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// Reads a bundle's `config.json`.
pub fn parse_config(bytes: &[u8]) -> Result<Config, SpecError> {
    let text = std::str::from_utf8(bytes)?;
    let doc = document(text, "config")?;
    let user = match doc.get("process")? {
        Some(process) => {
            let process = object(process, "process")?;
            parse_user(text, process.get("user")?, "process.user")?
        }
        None => parse_user(text, None, "process.user")?,
    };
    let mut annotations = HashMap::new();
    if let Some(raw) = doc.get("annotations")? {
        for (key, value) in object(raw, "annotations")?.entries {
            let value: String = serde_json::from_str(value.get())
                .map_err(|e| field_error(&format!("annotations[{key:?}]"), e))?;
            annotations.insert(key, value);
        }
    }
    let root_path = match doc.get("root")? {
        Some(raw) => match object(raw, "root")?.get("path")? {
            Some(path) => Some(
                serde_json::from_str::<String>(path.get())
                    .map_err(|e| field_error("root.path", e))?,
            ),
            None => None,
        },
        None => None,
    };
    let mut mount_destinations = Vec::new();
    if let Some(raw) = doc.get("mounts")? {
        // Each mount's entries in the same pass as the array.
        let mounts: Vec<Entries> =
            serde_json::from_str(raw.get()).map_err(|e| field_error("mounts", e))?;
        for (i, Entries(entries)) in mounts.into_iter().enumerate() {
            let path = format!("mounts[{i}]");
            let mount = Object { path, entries };
            if let Some(dest) = mount.get("destination")? {
                mount_destinations.push(
                    serde_json::from_str::<String>(dest.get())
                        .map_err(|e| field_error(&format!("{}.destination", mount.path), e))?,
                );
            }
        }
    }
    Ok(Config {
        user,
        annotations,
        root_path,
        mount_destinations,
    })
}

/// Reads the process file of an exec (`runc exec --process FILE`): a JSON
/// object shaped as a spec's `process`.
pub fn parse_process(bytes: &[u8]) -> Result<User, SpecError> {
    let text = std::str::from_utf8(bytes)?;
    let process = document(text, "process")?;
    parse_user(text, process.get("user")?, "user")
}

/// Returns `bytes` with `user.additionalGids` holding only the elements of A
/// that are in `kept`, in their order and with their original text. Everything
/// outside the array is copied unchanged.
pub fn rewrite_additional_gids(bytes: &[u8], user: &User, kept: &[u32]) -> Vec<u8> {
    let Some(span) = &user.span else {
        return bytes.to_vec();
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..span.start]);
    out.push(b'[');
    let kept_elements: Vec<(usize, usize)> = span
        .elements
        .iter()
        .zip(&user.additional_gids)
        .filter(|(_, gid)| kept.contains(gid))
        .map(|(element, _)| *element)
        .collect();
    if kept_elements.len() == span.elements.len() {
        // Nothing removed: the document, byte for byte.
        return bytes.to_vec();
    }
    if let (Some(first), Some(last)) = (span.elements.first(), span.elements.last()) {
        if !kept_elements.is_empty() {
            // Keep the array's own layout: what stood before the first element,
            // between the first two, and after the last.
            let separator = match span.elements.get(1) {
                Some(second) => &bytes[first.1..second.0],
                None => b",".as_slice(),
            };
            out.extend_from_slice(&bytes[span.start + 1..first.0]);
            for (i, (s, e)) in kept_elements.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(separator);
                }
                out.extend_from_slice(&bytes[*s..*e]);
            }
            out.extend_from_slice(&bytes[last.1..span.end - 1]);
        }
    }
    out.push(b']');
    out.extend_from_slice(&bytes[span.end..]);
    out
}

/// The top-level object of a whole document, read in one pass (its values'
/// text is checked as they are skipped): a syntax error is the document's,
/// any other shape is `path`'s.
fn document<'a>(text: &'a str, path: &str) -> Result<Object<'a>, SpecError> {
    match serde_json::from_str::<Entries<'a>>(text) {
        Ok(Entries(entries)) => Ok(Object {
            path: path.to_string(),
            entries,
        }),
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(field_error(path, e)),
        Err(e) => Err(SpecError::Json(e)),
    }
}

fn offset(text: &str, raw: &RawValue) -> (usize, usize) {
    let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
    (start, start + raw.get().len())
}

fn parse_user(text: &str, raw: Option<&RawValue>, path: &str) -> Result<User, SpecError> {
    let mut user = User {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        span: None,
    };
    let Some(raw) = raw else {
        return Ok(user);
    };
    let fields = object(raw, path)?;
    let id = |name: &str| -> Result<u32, SpecError> {
        match fields.get(name)? {
            Some(v) => {
                serde_json::from_str(v.get()).map_err(|e| field_error(&format!("{path}.{name}"), e))
            }
            None => Ok(0),
        }
    };
    user.uid = id("uid")?;
    user.gid = id("gid")?;
    let gids_path = format!("{path}.additionalGids");
    if let Some(array) = fields.get("additionalGids")? {
        let elements: Vec<&RawValue> =
            serde_json::from_str(array.get()).map_err(|e| field_error(&gids_path, e))?;
        let (start, end) = offset(text, array);
        let mut span = GidsSpan {
            start,
            end,
            elements: Vec::with_capacity(elements.len()),
        };
        for (i, element) in elements.iter().enumerate() {
            let gid: u32 = serde_json::from_str(element.get())
                .map_err(|e| field_error(&format!("{gids_path}[{i}]"), e))?;
            user.additional_gids.push(gid);
            span.elements.push(offset(text, element));
        }
        user.span = Some(span);
    }
    Ok(user)
}

/// A JSON object's entries, in document order, borrowing their raw text.
struct Object<'a> {
    path: String,
    entries: Vec<(String, &'a RawValue)>,
}

impl<'a> Object<'a> {
    /// The value of the field `name`, matched as Go's `encoding/json` matches
    /// struct fields (exact or case-folded); two matching keys are an error.
    /// A null value counts as absent.
    fn get(&self, name: &str) -> Result<Option<&'a RawValue>, SpecError> {
        let mut found = None;
        for (key, value) in &self.entries {
            if go_fold_eq(key, name) {
                if found.is_some() {
                    return Err(field_error(
                        &self.path,
                        format!("key {name:?} appears more than once"),
                    ));
                }
                found = Some(*value);
            }
        }
        // Go decodes null as "leave the zero value": the same as absent.
        Ok(found.filter(|v| v.get() != "null"))
    }
}

/// The object `raw`, whose text was checked as JSON when it was skipped: any
/// error is of its shape, so `path`'s.
fn object<'a>(raw: &'a RawValue, path: &str) -> Result<Object<'a>, SpecError> {
    document(raw.get(), path)
}

/// Go's `strings.EqualFold` for the ASCII field names the wrapper looks up:
/// ASCII case folding, plus the two non-ASCII letters that fold onto ASCII
/// (KELVIN SIGN onto k, LATIN SMALL LETTER LONG S onto s).
fn go_fold_eq(key: &str, name: &str) -> bool {
    let fold = |c: char| match c {
        '\u{212A}' => 'k',
        '\u{17F}' => 's',
        c => c.to_ascii_lowercase(),
    };
    key.chars().map(fold).eq(name.chars().map(fold))
}

struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EntriesVisitor<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut entries: Vec<(String, &'a RawValue)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!(
                            "key {key:?} appears more than once"
                        )));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONTAINERD: &str = r#"{"ociVersion":"1.0.2-dev","process":{"user":{"uid":1000,"gid":1000,"additionalGids":[1000,50000,60000]},"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"annotations":{"io.kubernetes.cri.container-type":"container","strict-groups.io/supplemental-groups-policy":"Strict"}}"#;

    #[test]
    fn reads_what_the_wrapper_needs() {
        let c = parse_config(CONTAINERD.as_bytes()).unwrap();
        assert_eq!((c.user.uid, c.user.gid), (1000, 1000));
        assert_eq!(c.user.additional_gids, vec![1000, 50000, 60000]);
        assert_eq!(c.root_path.as_deref(), Some("rootfs"));
        assert_eq!(
            c.annotation("io.kubernetes.cri.container-type"),
            Some("container")
        );
    }

    /// Found by fuzzing: a rewrite that removes nothing returns the very
    /// bytes, whatever the array's whitespace and separators.
    #[test]
    fn rewrite_removing_nothing_is_the_identity() {
        for doc in [
            "{\"process\":{\"user\":{\"uid\":1,\"gid\":1,\"additionalGids\":[\n\t\t]}}}",
            "{\"process\":{\"user\":{\"uid\":1,\"gid\":1,\"additionalGids\":[ 1, 2,3 ,4 ]}}}",
        ] {
            let c = parse_config(doc.as_bytes()).unwrap();
            let out = rewrite_additional_gids(doc.as_bytes(), &c.user, &c.user.additional_gids);
            assert_eq!(out, doc.as_bytes());
        }
    }

    #[test]
    fn rewrite_touches_only_the_array() {
        let c = parse_config(CONTAINERD.as_bytes()).unwrap();
        let out = rewrite_additional_gids(CONTAINERD.as_bytes(), &c.user, &[1000, 60000]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            CONTAINERD.replace("[1000,50000,60000]", "[1000,60000]")
        );
    }

    #[test]
    fn rewrite_keeps_pretty_layout() {
        let doc = "{\n\t\"process\": {\n\t\t\"user\": {\n\t\t\t\"uid\": 5,\n\t\t\t\"gid\": 5,\n\t\t\t\"additionalGids\": [\n\t\t\t\t5,\n\t\t\t\t7,\n\t\t\t\t9\n\t\t\t]\n\t\t}\n\t}\n}\n";
        let c = parse_config(doc.as_bytes()).unwrap();
        let out = rewrite_additional_gids(doc.as_bytes(), &c.user, &[5, 9]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            doc.replace("\t\t\t\t7,\n", "")
        );
        let out = rewrite_additional_gids(doc.as_bytes(), &c.user, &[]);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("\"additionalGids\": []\n"), "{out}");
    }

    #[test]
    fn process_file() {
        let p =
            br#"{"terminal":false,"user":{"uid":0,"gid":0,"additionalGids":[0,10]},"args":["id"]}"#;
        let u = parse_process(p).unwrap();
        assert_eq!(u.additional_gids, vec![0, 10]);
        let out = rewrite_additional_gids(p, &u, &[0]);
        assert_eq!(
            out,
            br#"{"terminal":false,"user":{"uid":0,"gid":0,"additionalGids":[0]},"args":["id"]}"#
        );
    }

    #[test]
    fn keys_match_like_go() {
        let u = parse_process(br#"{"User":{"UID":3,"GID":4,"ADDITIONALGIDS":[4,5]}}"#).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (3, 4, vec![4, 5]));
        let u = parse_process("{\"user\":{\"additionalGid\u{17F}\":[9]}}".as_bytes()).unwrap();
        assert_eq!(u.additional_gids, vec![9]);
    }

    #[test]
    fn absent_or_null_fields() {
        for doc in [
            "{}",
            r#"{"process":null}"#,
            r#"{"process":{"user":null}}"#,
            r#"{"process":{"user":{"additionalGids":null}}}"#,
            r#"{"annotations":null,"root":null}"#,
        ] {
            let c = parse_config(doc.as_bytes()).unwrap();
            assert!(c.user.additional_gids.is_empty(), "{doc}");
            assert_eq!(
                rewrite_additional_gids(doc.as_bytes(), &c.user, &[]),
                doc.as_bytes()
            );
        }
    }

    #[test]
    fn malformed_documents_are_refused() {
        for doc in [
            "",
            "{",
            "[]",
            "42",
            r#"{"process":[]}"#,
            r#"{"process":{"user":{"additionalGids":"1"}}}"#,
            r#"{"process":{"user":{"additionalGids":[-1]}}}"#,
            r#"{"process":{"user":{"additionalGids":[4294967296]}}}"#,
            r#"{"process":{"user":{"additionalGids":[1.5]}}}"#,
            r#"{"process":{"user":{"additionalGids":[1e3]}}}"#,
            r#"{"process":{"user":{"uid":"0"}}}"#,
            r#"{"process":{"user":{"additionalGids":[1],"additionalGids":[2]}}}"#,
            r#"{"process":{"user":{"additionalGids":[1],"AdditionalGids":[2]}}}"#,
            r#"{"process":{},"process":{}}"#,
            r#"{"annotations":{"a":1}}"#,
            r#"{"annotations":{"a":"1","a":"2"}}"#,
            r#"{"root":{"path":7}}"#,
            "{} x",
        ] {
            assert!(parse_config(doc.as_bytes()).is_err(), "accepted {doc}");
        }
        assert!(parse_config(b"{\"a\":\"\xff\"}").is_err());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\\\\\"é ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Removing gids changes the array and nothing else: every other value
        /// and the order of every key survive, and the result parses back.
        #[test]
        fn rewrite_preserves_everything_else(
            extra in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..6),
            gids in prop::collection::vec(any::<u32>(), 0..8),
            keep_mask in any::<u8>(),
            pretty in any::<bool>(),
        ) {
            let mut doc = serde_json::Map::new();
            for (k, v) in &extra { doc.insert(format!("x{k}"), v.clone()); }
            doc.insert("process".into(), serde_json::json!({"user": {"uid": 1, "gid": 2, "additionalGids": gids}, "env": extra}));
            let doc = serde_json::Value::Object(doc);
            let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
            let config = parse_config(text.as_bytes()).unwrap();
            prop_assert_eq!(&config.user.additional_gids, &gids);
            let kept: Vec<u32> = gids.iter().enumerate().filter(|(i, _)| keep_mask & (1 << i) != 0).map(|(_, g)| *g).collect();
            let out = rewrite_additional_gids(text.as_bytes(), &config.user, &kept);
            let mut expected = doc.clone();
            let want: Vec<u32> = gids.iter().copied().filter(|g| kept.contains(g)).collect();
            expected["process"]["user"]["additionalGids"] = serde_json::json!(want);
            let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&got, &expected);
            // Bytes outside the array are those of the input.
            let start = text.find("\"additionalGids\"").unwrap();
            prop_assert_eq!(&out[..start], &text.as_bytes()[..start]);
            let tail = text.len() - text[start..].find(']').map(|i| start + i + 1).unwrap();
            prop_assert_eq!(&out[out.len() - tail..], &text.as_bytes()[text.len() - tail..]);
            // Keeping everything gives the same bytes.
            prop_assert_eq!(rewrite_additional_gids(text.as_bytes(), &config.user, &gids), text.as_bytes().to_vec());
        }

        #[test]
        fn never_panics_on_any_input(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_config(&bytes);
            let _ = parse_process(&bytes);
        }
    }
}
