//! JSON into tensor buffers, without `serde_json::Value`.
//!
//! Decoding is where a JSON model server spends its time (MLServer#1046), so values go
//! straight from the parser into a [`Column`] of the model's element type: a
//! [`DeserializeSeed`] walks nested arrays of any depth, pushes every scalar, checks that
//! the arrays are rectangular and records their shape. Nothing is allocated from a number
//! the client declared: buffers grow with what the body actually holds, and a walk stops
//! as soon as it holds more elements than the declared shape allows.
//!
//! Errors inside values keep serde's `at line L column C`; [`json_error`] turns any parse
//! error into a 400 and says when the culprit is `NaN` or `Infinity`, which are not JSON.

use std::cell::Cell;
use std::fmt;

use crate::Few;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use crate::column::{Column, special};
use crate::error::ApiError;

/// Where the values being decoded belong, for error messages.
#[derive(Clone, Copy, Debug)]
pub enum Label<'a> {
    /// A V2 input, or a V1 columnar input.
    Input(&'a str),
    /// A key of a record (V1 instance, manifest route), with the record's index.
    Record(usize, &'a str),
    /// A V1 instance of a single-input model.
    Instance(usize),
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Input(name) => write!(f, "input \"{name}\""),
            Label::Record(i, key) => write!(f, "record {i}: \"{key}\""),
            Label::Instance(i) => write!(f, "instance {i}"),
        }
    }
}

/// The state of one walk through a (possibly nested) JSON array of values.
pub struct Walk<'a> {
    /// Where the values go.
    pub col: &'a mut Column,
    /// The most elements this walk may push (from a declared shape); `usize::MAX` when
    /// nothing was declared.
    pub limit: usize,
    /// For error messages.
    pub label: Label<'a>,
    /// The length of the arrays met at each depth (all arrays at a depth must agree).
    dims: Few<Option<usize>>,
    /// The depth at which scalars were met.
    leaf: Option<usize>,
    start: usize,
}

/// A walk decodes one JSON value as a serde seed (`map.next_value_seed(&mut walk)`).
impl<'de> DeserializeSeed<'de> for &mut Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        self.value(de)
    }
}

impl<'a> Walk<'a> {
    /// A walk pushing into `col` at most `limit` elements.
    pub fn new(col: &'a mut Column, limit: usize, label: Label<'a>) -> Walk<'a> {
        let start = col.len();
        Walk {
            col,
            limit,
            label,
            dims: Few::new(),
            leaf: None,
            start,
        }
    }

    /// Decodes one JSON value (a scalar or nested arrays) into the column.
    pub fn value<'de, D: Deserializer<'de>>(&mut self, de: D) -> Result<(), D::Error> {
        ElemSeed {
            walk: self,
            depth: 0,
        }
        .deserialize(de)
    }

    /// The visitor for a value whose deserialization already started (a caller that has
    /// matched on the value's kind itself delegates here).
    pub fn visitor(&mut self) -> ElemVisitor<'_, 'a> {
        ElemVisitor {
            walk: self,
            depth: 0,
        }
    }

    /// The number of elements pushed by this walk.
    pub fn count(&self) -> usize {
        self.col.len() - self.start
    }

    /// The shape of the nested arrays walked: `[]` for a scalar, `[4]` for a flat list,
    /// `[2, 4]` for a list of lists.
    pub fn shape(&self) -> Few<usize> {
        let depth = self.leaf.unwrap_or(self.dims.len());
        self.dims.iter().take(depth).map_while(|d| *d).collect()
    }

    fn enter_leaf<E: de::Error>(&mut self, depth: usize) -> Result<(), E> {
        match self.leaf {
            None => {
                if self.dims.len() > depth && self.dims[depth].is_some() {
                    return Err(self.mixed());
                }
                self.leaf = Some(depth);
            }
            Some(d) if d != depth => return Err(self.mixed()),
            Some(_) => {}
        }
        if self.count() >= self.limit {
            return Err(E::custom(format_args!(
                "{}: more elements than its shape holds ({})",
                self.label, self.limit
            )));
        }
        Ok(())
    }

    fn close_array<E: de::Error>(&mut self, depth: usize, len: usize) -> Result<(), E> {
        if self.leaf.is_some_and(|l| l <= depth) {
            return Err(self.mixed());
        }
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims[depth] {
            None => self.dims[depth] = Some(len),
            Some(n) if n != len => {
                return Err(E::custom(format_args!(
                    "{}: nested arrays of different lengths ({n} and {len}) are not a tensor",
                    self.label
                )));
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn mixed<E: de::Error>(&self) -> E {
        E::custom(format_args!(
            "{}: mixes values and arrays at the same depth",
            self.label
        ))
    }

    fn push<E: de::Error>(&mut self, r: Result<(), crate::column::ValueError>) -> Result<(), E> {
        r.map_err(|e| E::custom(format_args!("{}: {}", self.label, e.0)))
    }
}

struct ElemSeed<'w, 'a> {
    walk: &'w mut Walk<'a>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ElemSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(ElemVisitor {
            walk: self.walk,
            depth: self.depth,
        })
    }
}

/// Visits one scalar or array of a [`Walk`].
pub struct ElemVisitor<'w, 'a> {
    walk: &'w mut Walk<'a>,
    depth: usize,
}

impl<'de> Visitor<'de> for ElemVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: a number, a string, a boolean or an array",
            self.walk.label
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut len = 0usize;
        while seq
            .next_element_seed(ElemSeed {
                walk: &mut *self.walk,
                depth: self.depth + 1,
            })?
            .is_some()
        {
            len += 1;
        }
        self.walk.close_array(self.depth, len)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.walk.enter_leaf(self.depth)?;
        let r = self.walk.col.push_f64(v);
        self.walk.push(r)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.walk.enter_leaf(self.depth)?;
        let r = self.walk.col.push_i64(v);
        self.walk.push(r)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.walk.enter_leaf(self.depth)?;
        let r = self.walk.col.push_u64(v);
        self.walk.push(r)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.walk.enter_leaf(self.depth)?;
        let r = self.walk.col.push_bool(v);
        self.walk.push(r)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.walk.enter_leaf(self.depth)?;
        let r = self.walk.col.push_str(v);
        self.walk.push(r)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        match special(v) {
            Some(x) if QUOTED.get() => {
                self.walk.enter_leaf(self.depth)?;
                let r = self.walk.col.push_special(x, v);
                self.walk.push(r)
            }
            _ => self.visit_str(v),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.walk.enter_leaf(self.depth)?;
        let r = self.walk.col.push_special(f64::NAN, "null");
        self.walk.push(r)
    }
}

/// Matches an object key against a fixed list without allocating: the index of the key in
/// the list, or `None` for a key to ignore (or refuse).
pub struct Field(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Field {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<usize>, D::Error> {
        de.deserialize_str(self)
    }
}

impl Visitor<'_> for Field {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|k| *k == v))
    }
}

/// Parses a body with `parse`, taking Python's `NaN`, `Infinity` and `-Infinity` where a
/// value may be. JSON has no such tokens, but `json.dumps` writes them (and tritonclient
/// sends them): a body that fails on one is parsed again with each such token outside the
/// strings quoted, which the float inputs take (`Column::push_str`) and every other refuses
/// naming its type. A body without them costs nothing more; nothing else of strict JSON is
/// loosened.
pub fn parse<T>(
    body: &[u8],
    mut parse: impl FnMut(&[u8], Attempt) -> Result<T, serde_json::Error>,
) -> Result<T, ApiError> {
    match parse(body, Attempt::First) {
        Ok(t) => Ok(t),
        Err(e) if failed_at(&e, body).is_some_and(|rest| special_token(rest).is_some()) => {
            let quoted = quote_specials(body);
            let _quoted = Quoted::on();
            parse(&quoted, Attempt::Again).map_err(|e| json_error(e, &quoted))
        }
        Err(e) => Err(json_error(e, body)),
    }
}

thread_local! {
    /// Set while [`parse`] parses a body whose bare tokens it quoted: a string read without
    /// escapes that names a special float is one of those tokens (a client's own such string
    /// was escaped by the quoting, so it is read as text).
    static QUOTED: Cell<bool> = const { Cell::new(false) };
}

/// [`QUOTED`] for as long as it lives.
struct Quoted;

impl Quoted {
    fn on() -> Quoted {
        QUOTED.set(true);
        Quoted
    }
}

impl Drop for Quoted {
    fn drop(&mut self) {
        QUOTED.set(false);
    }
}

/// Which parse of a body [`parse`] asks for: the second must start from empty state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The body as received.
    First,
    /// The body with its NaN and infinities quoted, after the first failed on one.
    Again,
}

/// Where a syntax error points in the body.
fn failed_at<'b>(e: &serde_json::Error, body: &'b [u8]) -> Option<&'b [u8]> {
    (e.is_syntax() && e.line() > 0)
        .then(|| &body[offset(body, e.line(), e.column()).min(body.len())..])
}

/// The length of the `NaN`, `Infinity` or `-Infinity` token the bytes start with. serde_json
/// points at the token, or one past its first byte.
fn special_token(rest: &[u8]) -> Option<usize> {
    ["-Infinity", "Infinity", "NaN"]
        .iter()
        .find(|t| rest.starts_with(t.as_bytes()))
        .map(|t| t.len())
}

/// The body with every `NaN`, `Infinity` and `-Infinity` outside a string quoted, and every
/// string of the client's that reads exactly so written with its first character escaped
/// (the same text), so that the two cannot be confused (see [`QUOTED`]).
fn quote_specials(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let (mut i, mut in_string) = (0, false);
    while i < body.len() {
        let b = body[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' => {
                    if let Some(&next) = body.get(i + 1) {
                        out.push(next);
                        i += 1;
                    }
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            let text = &body[i + 1..];
            if let Some(n) = special_token(text).filter(|&n| text.get(n) == Some(&b'"')) {
                out.extend_from_slice(format!("\"\\u{:04x}", text[0]).as_bytes());
                out.extend_from_slice(&text[1..=n]);
                i += n + 2;
                continue;
            }
            in_string = true;
        } else if let Some(n) = special_token(&body[i..]) {
            out.push(b'"');
            out.extend_from_slice(&body[i..i + n]);
            out.push(b'"');
            i += n;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// A 400 for a JSON parse error, with its line and column, and a hint when the culprit is
/// an infinity or NaN written in a way no JSON writer uses.
pub fn json_error(e: serde_json::Error, body: &[u8]) -> ApiError {
    let msg = e.to_string();
    if e.is_syntax() && e.line() > 0 {
        // serde_json points inside a word it could not read (`nan` fails at its `a`).
        let mut at = offset(body, e.line(), e.column()).min(body.len());
        while at > 0 && body[at - 1].is_ascii_alphabetic() {
            at -= 1;
        }
        let rest = &body[at..];
        let rest = rest.strip_prefix(b"-").unwrap_or(rest);
        let lower = |t: &[u8]| rest.len() >= t.len() && rest[..t.len()].eq_ignore_ascii_case(t);
        if lower(b"nan") || lower(b"inf") {
            return ApiError::bad_request(format!(
                "malformed JSON: write a missing value as null or NaN and an infinity as \
                 Infinity or -Infinity (as Python's json does), or as the strings \"NaN\", \
                 \"Infinity\", \"-Infinity\" ({msg})"
            ));
        }
    }
    let kind = if e.is_syntax() || e.is_eof() {
        "malformed JSON: "
    } else {
        ""
    };
    ApiError::bad_request(format!("{kind}{msg}"))
}

/// The byte offset of a 1-based line and column (serde_json's column points at the
/// character that failed, or just past it).
fn offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match body[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    (start + column).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datatype::DataType;

    fn walk(json: &str, dt: DataType, limit: usize) -> Result<(Column, Vec<usize>), String> {
        let mut col = Column::with_capacity(dt, 0);
        let mut w = Walk::new(&mut col, limit, Label::Input("x"));
        let mut de = serde_json::Deserializer::from_str(json);
        w.value(&mut de).map_err(|e| e.to_string())?;
        let shape = w.shape();
        Ok((col, shape.to_vec()))
    }

    #[test]
    fn flat_and_nested_data_fill_the_same_buffer() {
        let (c, s) = walk("[1, 2.5, 3, 4]", DataType::F32, usize::MAX).unwrap();
        assert_eq!(c, Column::F32(vec![1.0, 2.5, 3.0, 4.0]));
        assert_eq!(s, vec![4]);
        let (c, s) = walk("[[1, 2.5], [3, 4]]", DataType::F32, 4).unwrap();
        assert_eq!(c, Column::F32(vec![1.0, 2.5, 3.0, 4.0]));
        assert_eq!(s, vec![2, 2]);
        let (_, s) = walk("7", DataType::I64, 1).unwrap();
        assert_eq!(s, Vec::<usize>::new());
        let (c, s) = walk("[]", DataType::F32, 0).unwrap();
        assert!(c.is_empty());
        assert_eq!(s, vec![0]);
    }

    #[test]
    fn ragged_and_mixed_arrays_are_refused() {
        let e = walk("[[1, 2], [3]]", DataType::F32, usize::MAX).unwrap_err();
        assert!(e.contains("different lengths (2 and 1)"), "{e}");
        let e = walk("[[1, 2], 3]", DataType::F32, usize::MAX).unwrap_err();
        assert!(e.contains("mixes values and arrays"), "{e}");
        let e = walk("[1, [2, 3]]", DataType::F32, usize::MAX).unwrap_err();
        assert!(e.contains("mixes values and arrays"), "{e}");
    }

    #[test]
    fn the_limit_stops_the_walk() {
        let e = walk("[1, 2, 3]", DataType::F32, 2).unwrap_err();
        assert!(e.contains("more elements than its shape holds (2)"), "{e}");
    }

    #[test]
    fn wrong_values_name_the_input_and_position() {
        let e = walk("[1, \"a\"]", DataType::F32, 9).unwrap_err();
        assert_eq!(
            e,
            "input \"x\": expected a number (FP32), found a string at line 1 column 7"
        );
        let e = walk("[1, null]", DataType::I64, 9).unwrap_err();
        assert_eq!(
            e,
            "input \"x\": null is a missing value (NaN), which only a floating-point input \
             (FP16, FP32, FP64) takes; this one is INT64 at line 1 column 8"
        );
        let e = walk("[\"Infinity\"]", DataType::Bool, 9).unwrap_err();
        assert!(
            e.contains("Infinity is an infinity, which only a floating-point"),
            "{e}"
        );
        let e = walk("{\"a\": 1}", DataType::F32, 9).unwrap_err();
        assert!(e.contains("invalid type: map"), "{e}");
        let (c, _) = walk("[\"a\", \"\\u00e9\"]", DataType::Bytes, 9).unwrap();
        assert_eq!(c, Column::Bytes(vec!["a".into(), "é".into()]));
    }

    /// A float walk of a body through [`parse`].
    fn parsed(body: &str, dt: DataType) -> Result<Column, String> {
        parse(body.as_bytes(), |b, _| {
            let mut col = Column::with_capacity(dt, 0);
            let mut w = Walk::new(&mut col, usize::MAX, Label::Input("x"));
            let mut de = serde_json::Deserializer::from_slice(b);
            w.value(&mut de)?;
            de.end()?;
            Ok(col)
        })
        .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn python_s_nan_and_infinities_and_null_are_float_values() {
        let c = parsed(
            "[1, NaN, Infinity, -Infinity, null, \"NaN\", \"-Infinity\"]",
            DataType::F64,
        )
        .unwrap();
        let Column::F64(v) = c else { panic!() };
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan() && v[4].is_nan() && v[5].is_nan());
        assert_eq!(
            (v[2], v[3], v[6]),
            (f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY)
        );
        let Column::F32(v) = parsed("[[NaN,\n -Infinity]]", DataType::F32).unwrap() else {
            panic!()
        };
        assert!(v[0].is_nan() && v[1] == f32::NEG_INFINITY);
        // Inside a string they stay text; an integer input refuses them, naming the value.
        let c = parsed("[\"NaN in a string\", \"Infinity\"]", DataType::Bytes).unwrap();
        assert_eq!(
            c,
            Column::Bytes(vec!["NaN in a string".into(), "Infinity".into()])
        );
        // A string input refuses a bare NaN, but keeps a client's "NaN" text beside one.
        let e = parsed("[\"NaN\", NaN]", DataType::Bytes).unwrap_err();
        assert!(
            e.contains("NaN is a missing value (NaN)") && e.contains("BYTES"),
            "{e}"
        );
        let c = parsed("[[\"NaN\"], [\"-Infinity\"]]", DataType::Bytes).unwrap();
        assert_eq!(c, Column::Bytes(vec!["NaN".into(), "-Infinity".into()]));
        let e = parsed("[1, NaN]", DataType::I64).unwrap_err();
        assert!(
            e.starts_with("input \"x\": NaN is a missing value (NaN)"),
            "{e}"
        );
        assert!(e.contains("this one is INT64 at line 1"), "{e}");
    }

    #[test]
    fn quoting_touches_only_the_tokens_outside_strings() {
        let q = |b: &str| String::from_utf8(quote_specials(b.as_bytes())).unwrap();
        assert_eq!(
            q("[NaN,-Infinity, Infinity]"),
            r#"["NaN","-Infinity", "Infinity"]"#
        );
        assert_eq!(
            q(r#"{"NaN": "a \" NaN", "b": NaN, "c": "-Infinity"}"#),
            r#"{"\u004eaN": "a \" NaN", "b": "NaN", "c": "\u002dInfinity"}"#
        );
    }

    #[test]
    fn what_no_json_writer_writes_is_still_malformed_and_named() {
        for body in ["[1, nan]", "[inf]", "{\"a\":\n -inf}", "[1, Nan]"] {
            let e = serde_json::from_str::<serde::de::IgnoredAny>(body).unwrap_err();
            let api = json_error(e, body.as_bytes());
            assert_eq!(api.status(), 400);
            assert!(
                api.message()
                    .contains("write a missing value as null or NaN"),
                "{body}: {api}"
            );
        }
        // A real syntax error after a NaN is reported as such, not as the NaN.
        let e = parsed("[NaN, 1,]", DataType::F32).unwrap_err();
        assert!(e.starts_with("malformed JSON: "), "{e}");
        let body = "{\"a\": }";
        let e = serde_json::from_str::<serde::de::IgnoredAny>(body).unwrap_err();
        assert_eq!(
            json_error(e, body.as_bytes()).message(),
            "malformed JSON: expected value at line 1 column 7"
        );
    }
}
