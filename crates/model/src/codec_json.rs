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

use std::fmt;

use crate::Few;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use crate::column::Column;
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

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(format_args!(
            "{}: null is not a tensor value",
            self.walk.label
        )))
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

/// A 400 for a JSON parse error, with its line and column, and a hint when the culprit is
/// `NaN` or `Infinity`.
pub fn json_error(e: serde_json::Error, body: &[u8]) -> ApiError {
    let msg = e.to_string();
    if e.is_syntax() && e.line() > 0 {
        let at = offset(body, e.line(), e.column());
        let rest = &body[at.min(body.len())..];
        let rest = rest.strip_prefix(b"-").unwrap_or(rest);
        if rest.starts_with(b"NaN") || rest.starts_with(b"Infinity") || rest.starts_with(b"inf") {
            return ApiError::bad_request(format!(
                "malformed JSON: NaN and Infinity are not JSON numbers ({msg})"
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
        let e = walk("[1, null]", DataType::F32, 9).unwrap_err();
        assert!(e.contains("null is not a tensor value"), "{e}");
        let e = walk("{\"a\": 1}", DataType::F32, 9).unwrap_err();
        assert!(e.contains("invalid type: map"), "{e}");
        let (c, _) = walk("[\"a\", \"\\u00e9\"]", DataType::Bytes, 9).unwrap();
        assert_eq!(c, Column::Bytes(vec!["a".into(), "é".into()]));
    }

    #[test]
    fn nan_and_infinity_are_named() {
        for body in ["[1, NaN]", "[Infinity]", "{\"a\":\n -Infinity}"] {
            let e = serde_json::from_str::<serde::de::IgnoredAny>(body).unwrap_err();
            let api = json_error(e, body.as_bytes());
            assert_eq!(api.status(), 400);
            assert!(api.message().contains("NaN and Infinity"), "{body}: {api}");
        }
        let body = "{\"a\": }";
        let e = serde_json::from_str::<serde::de::IgnoredAny>(body).unwrap_err();
        assert_eq!(
            json_error(e, body.as_bytes()).message(),
            "malformed JSON: expected value at line 1 column 7"
        );
    }
}
