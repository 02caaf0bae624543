//! A request's outputs, and how they are written as JSON straight into the response buffer.
//!
//! With dynamic batching one engine call answers several requests: the executor hands each request
//! the batch's outputs (shared, not copied, read where the engine left them) and the range of rows
//! that are its own. [`Outputs::view`] gives an [`OutView`] of one output restricted to those rows,
//! and the writers here print it (flat, nested, or one row) without building a
//! `serde_json::Value`: floats through ryu, integers through itoa. JSON has no NaN or
//! infinity, and answers stay strict JSON: NaN is `null` (as pandas writes a missing value),
//! ±infinity the strings `"Infinity"` and `"-Infinity"` (protobuf's JSON mapping); the
//! decoders take all three back for float inputs.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use half::f16;
use serde_json::ser::{CompactFormatter, Formatter};

use crate::datatype::DataType;
use crate::engine::OutputSet;
use crate::metadata::{Classes, ModelMeta};
use crate::run_error::RunError;
use crate::tensor::{Shape, Slice, each_type};

/// The outputs answering one request.
#[derive(Clone, Debug)]
pub struct Outputs {
    tensors: Arc<dyn OutputSet>,
    /// The rows (first dimension) that belong to this request; `None` for all of them.
    rows: Option<Range<usize>>,
    /// The call that made them: its rows (every merged request's) and its time.
    call: (usize, Duration),
}

impl Outputs {
    /// Outputs of a call that answered one request only.
    pub fn whole(tensors: Arc<dyn OutputSet>) -> Outputs {
        Outputs {
            tensors,
            rows: None,
            call: (0, Duration::ZERO),
        }
    }

    /// This request's rows of a batched call.
    pub fn rows(tensors: Arc<dyn OutputSet>, rows: Range<usize>) -> Outputs {
        Outputs {
            tensors,
            rows: Some(rows),
            call: (0, Duration::ZERO),
        }
    }

    /// Records the call that made these outputs: `rows` in all (after merging), in `took`.
    pub fn made_by(mut self, rows: usize, took: Duration) -> Outputs {
        self.call = (rows, took);
        self
    }

    /// The call that made these outputs: its rows (after merging) and its time (for the
    /// access log; zero when unknown).
    pub fn call(&self) -> (usize, Duration) {
        self.call
    }

    /// The number of outputs.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the model gave no output.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// A view of output `i` limited to this request's rows.
    pub fn view(&self, i: usize) -> Result<OutView<'_>, RunError> {
        let tensor = self.tensors.get(i)?;
        let mut shape: Shape = tensor.shape.into();
        let elements = match &self.rows {
            None => tensor.elements,
            Some(r) => {
                let row: usize = shape[1..].iter().product();
                shape[0] = r.len();
                tensor.elements.range(r.start * row..r.end * row)
            }
        };
        Ok(OutView {
            datatype: tensor.datatype(),
            elements,
            shape,
            classes: None,
        })
    }

    /// [`Outputs::view`] of output `i` of a model: the rows of a ZipMap output are written
    /// as `{label: probability}` objects (see [`OutView::keyed`]).
    pub fn view_of<'a>(&'a self, meta: &'a ModelMeta, i: usize) -> Result<OutView<'a>, RunError> {
        let view = self.view(i)?;
        Ok(match meta.outputs.get(i).and_then(|o| o.classes.as_ref()) {
            Some(classes) => view.keyed(classes),
            None => view,
        })
    }
}

/// One output, limited to one request's elements.
#[derive(Debug)]
pub struct OutView<'a> {
    /// Its protocol type.
    pub datatype: DataType,
    /// This request's elements, row-major.
    pub elements: Slice<'a>,
    /// The shape as answered (the batch dimension is this request's rows).
    pub shape: Shape,
    /// The labels keying each row's columns, for a ZipMap output written as objects.
    pub classes: Option<&'a Classes>,
}

/// A value that can be printed as a JSON scalar.
pub trait JsonScalar {
    /// Appends the value as JSON.
    fn write_json(&self, buf: &mut Vec<u8>);
}

macro_rules! json_int {
    ($($t:ty => $m:ident as $as:ty),*) => {$(
        impl JsonScalar for $t {
            fn write_json(&self, buf: &mut Vec<u8>) {
                let _ = CompactFormatter.$m(buf, *self as $as);
            }
        }
    )*};
}
json_int!(u8 => write_u64 as u64, u16 => write_u64 as u64, u32 => write_u64 as u64,
    u64 => write_u64 as u64, i8 => write_i64 as i64, i16 => write_i64 as i64,
    i32 => write_i64 as i64, i64 => write_i64 as i64);

/// A float that is not a JSON number: NaN as `null`, ±infinity as strings.
fn write_non_finite(nan: bool, negative: bool, buf: &mut Vec<u8>) {
    buf.extend_from_slice(match (nan, negative) {
        (true, _) => b"null".as_slice(),
        (false, false) => b"\"Infinity\"",
        (false, true) => b"\"-Infinity\"",
    });
}

impl JsonScalar for f32 {
    fn write_json(&self, buf: &mut Vec<u8>) {
        if self.is_finite() {
            let _ = CompactFormatter.write_f32(buf, *self);
        } else {
            write_non_finite(self.is_nan(), self.is_sign_negative(), buf);
        }
    }
}

impl JsonScalar for f64 {
    fn write_json(&self, buf: &mut Vec<u8>) {
        if self.is_finite() {
            let _ = CompactFormatter.write_f64(buf, *self);
        } else {
            write_non_finite(self.is_nan(), self.is_sign_negative(), buf);
        }
    }
}

impl JsonScalar for f16 {
    fn write_json(&self, buf: &mut Vec<u8>) {
        self.to_f32().write_json(buf)
    }
}

impl JsonScalar for bool {
    fn write_json(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

impl JsonScalar for String {
    fn write_json(&self, buf: &mut Vec<u8>) {
        write_str(buf, self);
    }
}

/// Writes a JSON string, escaped.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// Writes label `i` of `classes` as a JSON object key: a string, as JSON keys are (the integer
/// label 1 is `"1"`, as `json.dumps` writes onnxruntime's `{1: 0.7}`).
fn write_key(classes: &Classes, buf: &mut Vec<u8>, i: usize) {
    match classes {
        Classes::Ints(v) => {
            buf.push(b'"');
            let _ = serde_json::ser::Formatter::write_i64(
                &mut serde_json::ser::CompactFormatter,
                buf,
                v[i],
            );
            buf.push(b'"');
        }
        Classes::Strings(v) => write_str(buf, &v[i]),
    }
}

/// Nested arrays of these dimensions holding `data` (row-major); a scalar for no
/// dimensions.
fn write_nested<T: JsonScalar>(buf: &mut Vec<u8>, data: &[T], dims: &[usize]) {
    match dims {
        [] => match data.first() {
            Some(v) => v.write_json(buf),
            None => buf.extend_from_slice(b"null"),
        },
        [_] => write_flat(buf, data),
        [n, rest @ ..] => {
            let chunk: usize = rest.iter().product();
            buf.push(b'[');
            for i in 0..*n {
                if i > 0 {
                    buf.push(b',');
                }
                let s = (i * chunk).min(data.len());
                let e = (s + chunk).min(data.len());
                write_nested(buf, &data[s..e], rest);
            }
            buf.push(b']');
        }
    }
}

fn write_flat<T: JsonScalar>(buf: &mut Vec<u8>, data: &[T]) {
    buf.push(b'[');
    for (i, v) in data.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        v.write_json(buf);
    }
    buf.push(b']');
}

/// Runs `$body` with `$s` bound to the view's elements as a typed slice.
macro_rules! with_slice {
    ($view:expr, $s:ident => $body:expr) => {
        each_type!(Slice, $view.elements, $s => $body)
    };
}

/// Elements that can be written as little-endian bytes.
trait WriteLe {
    fn write_le(&self, buf: &mut Vec<u8>);
}

macro_rules! write_le {
    ($($t:ty),*) => {$(
        impl WriteLe for [$t] {
            fn write_le(&self, buf: &mut Vec<u8>) {
                buf.reserve(std::mem::size_of_val(self));
                for v in self {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    )*};
}
write_le!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, half::f16);

impl WriteLe for [bool] {
    fn write_le(&self, buf: &mut Vec<u8>) {
        buf.extend(self.iter().map(|&b| b as u8));
    }
}

impl WriteLe for [String] {
    fn write_le(&self, buf: &mut Vec<u8>) {
        for s in self {
            buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
    }
}

impl<'a> OutView<'a> {
    /// The elements in the binary tensor extension's format (little-endian, strings as a
    /// 4-byte length then the bytes); returns how many bytes were written.
    pub fn write_le(&self, buf: &mut Vec<u8>) -> Result<usize, RunError> {
        let before = buf.len();
        with_slice!(self, s => s.write_le(buf));
        Ok(buf.len() - before)
    }

    /// The elements as one flat JSON array (V2 `data`).
    pub fn write_flat(&self, buf: &mut Vec<u8>) -> Result<(), RunError> {
        with_slice!(self, s => write_flat(buf, s));
        Ok(())
    }

    /// Keys each row's columns by `classes` in [`OutView::write_row`] and
    /// [`OutView::write_nested`]: the row `[0.9, 0.1]` of a ZipMap output is written
    /// `{"0": 0.9, "1": 0.1}`, one object per row as onnxruntime's Python API returns them.
    /// Only a `[N, C]` FP32 view with C labels is keyed; any other keeps its arrays.
    pub fn keyed(mut self, classes: &'a Classes) -> Self {
        let fits = self.datatype == DataType::F32
            && self.shape.len() == 2
            && self.shape[1] == classes.len();
        if fits {
            self.classes = Some(classes);
        }
        self
    }

    /// The elements as nested arrays of the view's shape (V1 columnar outputs); a keyed
    /// view is an array of one object per row.
    pub fn write_nested(&self, buf: &mut Vec<u8>) -> Result<(), RunError> {
        if self.classes.is_some() {
            return self.write_rows(buf);
        }
        with_slice!(self, s => write_nested(buf, s, &self.shape));
        Ok(())
    }

    /// A JSON array of the rows, each as [`OutView::write_row`] writes it (V1 predictions).
    pub fn write_rows(&self, buf: &mut Vec<u8>) -> Result<(), RunError> {
        buf.push(b'[');
        for r in 0..self.row_count() {
            if r > 0 {
                buf.push(b',');
            }
            self.write_row(buf, r, false)?;
        }
        buf.push(b']');
        Ok(())
    }

    /// Row `row` nested by the dimensions after the batch: a scalar for a `[N]` output,
    /// `[a, b, c]` for `[N, 3]`. With `unwrap`, a row of one element is a scalar too (the
    /// manifest routes' `{"predict": 0.12}` for a `[N, 1]` output).
    pub fn write_row(&self, buf: &mut Vec<u8>, row: usize, unwrap: bool) -> Result<(), RunError> {
        if let Some(classes) = self.classes {
            return self.write_keyed_row(buf, row, classes);
        }
        let dims = &self.shape[1.min(self.shape.len())..];
        let size: usize = dims.iter().product();
        let dims = if unwrap && size == 1 { &[][..] } else { dims };
        with_slice!(self, s => {
            let from = (row * size).min(s.len());
            let to = (from + size).min(s.len());
            write_nested(buf, &s[from..to], dims)
        });
        Ok(())
    }

    /// The number of rows (the first dimension), or 1 for a scalar output.
    pub fn row_count(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Row `row` of a keyed view: `{label: probability, ...}`.
    fn write_keyed_row(
        &self,
        buf: &mut Vec<u8>,
        row: usize,
        classes: &Classes,
    ) -> Result<(), RunError> {
        let width = classes.len();
        let Slice::F32(probs) = self.elements else {
            return Err(RunError::Inference(format!(
                "a keyed output must be FP32, not {}",
                self.datatype
            )));
        };
        let from = (row * width).min(probs.len());
        let to = (from + width).min(probs.len());
        buf.push(b'{');
        for (k, p) in probs[from..to].iter().enumerate() {
            if k > 0 {
                buf.push(b',');
            }
            write_key(classes, buf, k);
            buf.push(b':');
            p.write_json(buf);
        }
        buf.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn text(f: impl FnOnce(&mut Vec<u8>) -> Result<(), RunError>) -> String {
        let mut buf = vec![];
        f(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn views_limit_a_batch_to_its_rows() {
        let t = Tensor::new(&[3, 2], vec![1f32, 2., 3., 4., 5., 6.]).unwrap();
        let out = Outputs::rows(Arc::new(vec![t]), 1..3);
        let v = out.view(0).unwrap();
        assert_eq!(&*v.shape, &[2, 2]);
        assert_eq!(text(|b| v.write_flat(b)), "[3.0,4.0,5.0,6.0]");
        assert_eq!(text(|b| v.write_nested(b)), "[[3.0,4.0],[5.0,6.0]]");
        assert_eq!(text(|b| v.write_row(b, 1, false)), "[5.0,6.0]");
    }

    #[test]
    fn single_element_rows_unwrap_to_scalars_when_asked() {
        let t = Tensor::new(&[2, 1], vec![0.25f32, 0.5]).unwrap();
        let out = Outputs::whole(Arc::new(vec![t]));
        let v = out.view(0).unwrap();
        assert_eq!(text(|b| v.write_row(b, 1, true)), "0.5");
        assert_eq!(text(|b| v.write_row(b, 1, false)), "[0.5]");
    }

    #[test]
    fn nan_is_null_infinities_are_strings_and_strings_are_escaped() {
        let t = Tensor::new(
            &[1, 4],
            vec![f32::NAN, 1.5, f32::INFINITY, f32::NEG_INFINITY],
        );
        let s = Tensor::new(&[1, 1], vec!["a\"b".to_string()]).unwrap();
        let out = Outputs::whole(Arc::new(vec![t.unwrap(), s]));
        assert_eq!(
            text(|b| out.view(0).unwrap().write_flat(b)),
            r#"[null,1.5,"Infinity","-Infinity"]"#
        );
        let d = Tensor::new(&[2], vec![f64::NAN, f64::NEG_INFINITY]).unwrap();
        let out64 = Outputs::whole(Arc::new(vec![d]));
        assert_eq!(
            text(|b| out64.view(0).unwrap().write_flat(b)),
            r#"[null,"-Infinity"]"#
        );
        assert_eq!(text(|b| out.view(1).unwrap().write_flat(b)), "[\"a\\\"b\"]");
    }

    #[test]
    fn empty_batches_print_empty_arrays() {
        let t = Tensor::zeros(DataType::F32, &[0, 3]);
        let out = Outputs::whole(Arc::new(vec![t]));
        let v = out.view(0).unwrap();
        assert_eq!(text(|b| v.write_flat(b)), "[]");
        assert_eq!(text(|b| v.write_nested(b)), "[]");
    }
}
