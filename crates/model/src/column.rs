//! A typed, growable tensor buffer: what the decoders push values into.
//!
//! A decoder knows the element type only at run time (from the model's metadata), yet it
//! must write straight into a buffer of that type (`Vec<f32>` for FP32, not a list of JSON
//! values). [`Column`] is that buffer: one variant per [`DataType`], with `push_*` methods
//! that convert a JSON scalar to the element type or say precisely why it does not fit (a
//! string where a number belongs, 300 for INT8, 1e39 for FP32, 2.5 for INT64).

use half::f16;
use serve_runtime::tensor::Tensor;

use crate::datatype::DataType;

/// Why a value does not fit the column's type. The decoders add the input's name and,
/// for JSON, serde adds the line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

/// A typed buffer of tensor elements, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// BOOL.
    Bool(Vec<bool>),
    /// UINT8.
    U8(Vec<u8>),
    /// UINT16.
    U16(Vec<u16>),
    /// UINT32.
    U32(Vec<u32>),
    /// UINT64.
    U64(Vec<u64>),
    /// INT8.
    I8(Vec<i8>),
    /// INT16.
    I16(Vec<i16>),
    /// INT32.
    I32(Vec<i32>),
    /// INT64.
    I64(Vec<i64>),
    /// FP16.
    F16(Vec<f16>),
    /// FP32.
    F32(Vec<f32>),
    /// FP64.
    F64(Vec<f64>),
    /// BYTES.
    Bytes(Vec<String>),
}

/// Applies `$body` to the inner vector of any variant.
macro_rules! each {
    ($col:expr, $v:ident => $body:expr) => {
        match $col {
            Column::Bool($v) => $body,
            Column::U8($v) => $body,
            Column::U16($v) => $body,
            Column::U32($v) => $body,
            Column::U64($v) => $body,
            Column::I8($v) => $body,
            Column::I16($v) => $body,
            Column::I32($v) => $body,
            Column::I64($v) => $body,
            Column::F16($v) => $body,
            Column::F32($v) => $body,
            Column::F64($v) => $body,
            Column::Bytes($v) => $body,
        }
    };
}

/// Pushes an integer into any integer variant, checking its range.
macro_rules! push_int {
    ($col:expr, $v:expr, $shown:expr) => {
        match $col {
            Column::U8(x) => x.push(int_in_range($v, $shown, DataType::U8)?),
            Column::U16(x) => x.push(int_in_range($v, $shown, DataType::U16)?),
            Column::U32(x) => x.push(int_in_range($v, $shown, DataType::U32)?),
            Column::U64(x) => x.push(int_in_range($v, $shown, DataType::U64)?),
            Column::I8(x) => x.push(int_in_range($v, $shown, DataType::I8)?),
            Column::I16(x) => x.push(int_in_range($v, $shown, DataType::I16)?),
            Column::I32(x) => x.push(int_in_range($v, $shown, DataType::I32)?),
            Column::I64(x) => x.push(int_in_range($v, $shown, DataType::I64)?),
            _ => unreachable!("push_int on a non-integer column"),
        }
    };
}

/// A JSON integer into any column: floats take it as a float, integer columns check its
/// range, booleans and strings refuse it.
macro_rules! push_json_int {
    ($col:expr, $v:expr) => {{
        let v = $v;
        match $col {
            Column::F64(x) => x.push(v as f64),
            Column::F32(x) => x.push(v as f32),
            Column::F16(x) => x.push(f16_from_int(v as f64)?),
            Column::Bool(_) | Column::Bytes(_) => {
                return Err($col.expected_found("a number"));
            }
            _ => push_int!($col, v, &v),
        }
        Ok(())
    }};
}

fn int_in_range<S, T: TryFrom<S>>(
    v: S,
    shown: &dyn std::fmt::Display,
    dt: DataType,
) -> Result<T, ValueError> {
    T::try_from(v).map_err(|_| ValueError(format!("{shown} is out of range for {dt}")))
}

/// The most elements a decoder reserves before any is read: a buffer grows with what the
/// body holds. (A string element is 24 bytes in memory for 3 in JSON or 4 in binary, so
/// reserving from the body length alone could multiply a large body.)
pub const INITIAL_CAPACITY: usize = 1 << 16;

impl Column {
    /// An empty column of this type with room for `capacity` elements. Callers bound the
    /// capacity by what the body can hold, never by a declared shape alone.
    pub fn with_capacity(dt: DataType, capacity: usize) -> Column {
        match dt {
            DataType::Bool => Column::Bool(Vec::with_capacity(capacity)),
            DataType::U8 => Column::U8(Vec::with_capacity(capacity)),
            DataType::U16 => Column::U16(Vec::with_capacity(capacity)),
            DataType::U32 => Column::U32(Vec::with_capacity(capacity)),
            DataType::U64 => Column::U64(Vec::with_capacity(capacity)),
            DataType::I8 => Column::I8(Vec::with_capacity(capacity)),
            DataType::I16 => Column::I16(Vec::with_capacity(capacity)),
            DataType::I32 => Column::I32(Vec::with_capacity(capacity)),
            DataType::I64 => Column::I64(Vec::with_capacity(capacity)),
            DataType::F16 => Column::F16(Vec::with_capacity(capacity)),
            DataType::F32 => Column::F32(Vec::with_capacity(capacity)),
            DataType::F64 => Column::F64(Vec::with_capacity(capacity)),
            DataType::Bytes => Column::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        match self {
            Column::Bool(_) => DataType::Bool,
            Column::U8(_) => DataType::U8,
            Column::U16(_) => DataType::U16,
            Column::U32(_) => DataType::U32,
            Column::U64(_) => DataType::U64,
            Column::I8(_) => DataType::I8,
            Column::I16(_) => DataType::I16,
            Column::I32(_) => DataType::I32,
            Column::I64(_) => DataType::I64,
            Column::F16(_) => DataType::F16,
            Column::F32(_) => DataType::F32,
            Column::F64(_) => DataType::F64,
            Column::Bytes(_) => DataType::Bytes,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    /// True when no element was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every element, keeping the allocation.
    pub fn clear(&mut self) {
        each!(self, v => v.clear())
    }

    /// Moves every element of `other` (of the same type) to the end of `self`.
    pub fn append(&mut self, other: &mut Column) {
        match (self, other) {
            (Column::Bool(a), Column::Bool(b)) => a.append(b),
            (Column::U8(a), Column::U8(b)) => a.append(b),
            (Column::U16(a), Column::U16(b)) => a.append(b),
            (Column::U32(a), Column::U32(b)) => a.append(b),
            (Column::U64(a), Column::U64(b)) => a.append(b),
            (Column::I8(a), Column::I8(b)) => a.append(b),
            (Column::I16(a), Column::I16(b)) => a.append(b),
            (Column::I32(a), Column::I32(b)) => a.append(b),
            (Column::I64(a), Column::I64(b)) => a.append(b),
            (Column::F16(a), Column::F16(b)) => a.append(b),
            (Column::F32(a), Column::F32(b)) => a.append(b),
            (Column::F64(a), Column::F64(b)) => a.append(b),
            (Column::Bytes(a), Column::Bytes(b)) => a.append(b),
            _ => unreachable!("append between columns of different types"),
        }
    }

    /// Pushes a JSON floating-point number.
    pub fn push_f64(&mut self, v: f64) -> Result<(), ValueError> {
        match self {
            Column::F64(x) => x.push(v),
            Column::F32(x) => x.push(finite(v as f32, v, DataType::F32)?),
            Column::F16(x) => {
                let h = f16::from_f64(v);
                if !h.is_finite() {
                    return Err(out_of_range(v, DataType::F16));
                }
                x.push(h)
            }
            Column::Bool(_) | Column::Bytes(_) => return Err(self.expected_found("a number")),
            _ => {
                // An integral float (3.0) is accepted where an integer belongs; 2.5 is not.
                if v.fract() != 0.0 || !v.is_finite() {
                    return Err(ValueError(format!(
                        "expected an integer ({}), found {}",
                        self.datatype(),
                        show(v)
                    )));
                }
                if v >= 0.0 {
                    if v >= 18446744073709551616.0 {
                        return Err(out_of_range(v, self.datatype()));
                    }
                    push_int!(self, v as u64, &v)
                } else {
                    if v < -9223372036854775808.0 {
                        return Err(out_of_range(v, self.datatype()));
                    }
                    push_int!(self, v as i64, &v)
                }
            }
        }
        Ok(())
    }

    /// Pushes a JSON integer that did not fit `u64` (a negative one).
    pub fn push_i64(&mut self, v: i64) -> Result<(), ValueError> {
        push_json_int!(self, v)
    }

    /// Pushes a non-negative JSON integer.
    pub fn push_u64(&mut self, v: u64) -> Result<(), ValueError> {
        push_json_int!(self, v)
    }

    /// Pushes a JSON boolean.
    pub fn push_bool(&mut self, v: bool) -> Result<(), ValueError> {
        match self {
            Column::Bool(x) => x.push(v),
            _ => return Err(self.expected_found("a boolean")),
        }
        Ok(())
    }

    /// Pushes a JSON string. A float input also takes `"NaN"`, `"Infinity"` and
    /// `"-Infinity"` (protobuf's JSON mapping, and Python's bare tokens once quoted: see
    /// `codec_json::parse`).
    pub fn push_str(&mut self, v: &str) -> Result<(), ValueError> {
        match self {
            Column::Bytes(x) => x.push(v.to_owned()),
            _ => match special(v) {
                Some(x) => return self.push_special(x, v),
                None => return Err(self.expected_found("a string")),
            },
        }
        Ok(())
    }

    /// Pushes NaN or an infinity, written `written` by the client (`null`, `NaN`,
    /// `Infinity`): a float input takes it, any other refuses it naming its type.
    pub fn push_special(&mut self, v: f64, written: &str) -> Result<(), ValueError> {
        match self {
            Column::F64(x) => x.push(v),
            Column::F32(x) => x.push(v as f32),
            Column::F16(x) => x.push(f16::from_f64(v)),
            _ => {
                let what = if v.is_nan() {
                    "a missing value (NaN)"
                } else {
                    "an infinity"
                };
                return Err(ValueError(format!(
                    "{written} is {what}, which only a floating-point input (FP16, FP32, FP64) \
                     takes; this one is {}",
                    self.datatype()
                )));
            }
        }
        Ok(())
    }

    /// Pushes an owned string (binary BYTES elements).
    pub fn push_string(&mut self, v: String) -> Result<(), ValueError> {
        match self {
            Column::Bytes(x) => x.push(v),
            _ => return Err(self.expected_found("a string")),
        }
        Ok(())
    }

    /// The message for a JSON value of the wrong kind: `expected a number (FP32), found a
    /// string`.
    fn expected_found(&self, found: &str) -> ValueError {
        let dt = self.datatype();
        let want = match dt {
            DataType::Bool => "true or false",
            DataType::Bytes => "a string",
            _ if dt.is_float() => "a number",
            _ => "an integer",
        };
        ValueError(format!("expected {want} ({dt}), found {found}"))
    }

    /// The tensor of this shape holding these elements. The caller has checked that the
    /// shape's volume equals the number of elements.
    pub fn into_tensor(self, shape: &[usize]) -> Result<Tensor, String> {
        each!(self, v => Tensor::new(shape, v))
    }
}

/// The value of a string that names a float JSON cannot write as a number.
pub(crate) fn special(v: &str) -> Option<f64> {
    match v {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn finite(x: f32, shown: f64, dt: DataType) -> Result<f32, ValueError> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(out_of_range(shown, dt))
    }
}

fn f16_from_int(v: f64) -> Result<f16, ValueError> {
    let h = f16::from_f64(v);
    if h.is_finite() {
        Ok(h)
    } else {
        Err(out_of_range(v, DataType::F16))
    }
}

fn out_of_range(v: f64, dt: DataType) -> ValueError {
    ValueError(format!("{} is out of range for {dt}", show(v)))
}

/// A number as a person would write it: `1e39`, not forty digits.
fn show(v: f64) -> String {
    if v != 0.0 && !(1e-5..1e16).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_fill_float_columns() {
        let mut c = Column::with_capacity(DataType::F32, 2);
        c.push_f64(5.1).unwrap();
        c.push_u64(3).unwrap();
        c.push_i64(-2).unwrap();
        assert_eq!(c, Column::F32(vec![5.1, 3.0, -2.0]));
    }

    #[test]
    fn out_of_range_floats_are_refused() {
        let mut c = Column::with_capacity(DataType::F32, 0);
        let e = c.push_f64(1e39).unwrap_err();
        assert!(e.0.contains("out of range for FP32"), "{e:?}");
        let mut h = Column::with_capacity(DataType::F16, 0);
        assert!(h.push_f64(70000.0).is_err());
        assert!(h.push_u64(70000).is_err());
        h.push_f64(1.5).unwrap();
        assert_eq!(h, Column::F16(vec![f16::from_f32(1.5)]));
    }

    #[test]
    fn integers_are_range_checked() {
        let mut c = Column::with_capacity(DataType::I8, 0);
        c.push_i64(-128).unwrap();
        assert_eq!(
            c.push_u64(300).unwrap_err().0,
            "300 is out of range for INT8"
        );
        let mut u = Column::with_capacity(DataType::U32, 0);
        assert!(u.push_i64(-1).is_err());
        u.push_f64(3.0).unwrap();
        assert!(
            u.push_f64(2.5)
                .unwrap_err()
                .0
                .contains("expected an integer")
        );
        assert!(u.push_f64(1e30).is_err());
        assert_eq!(u, Column::U32(vec![3]));
    }

    #[test]
    fn wrong_kinds_name_what_was_expected() {
        let mut c = Column::with_capacity(DataType::F32, 0);
        assert_eq!(
            c.push_str("abc").unwrap_err().0,
            "expected a number (FP32), found a string"
        );
        assert_eq!(
            c.push_bool(true).unwrap_err().0,
            "expected a number (FP32), found a boolean"
        );
        let mut s = Column::with_capacity(DataType::Bytes, 0);
        assert_eq!(
            s.push_u64(1).unwrap_err().0,
            "expected a string (BYTES), found a number"
        );
        let mut b = Column::with_capacity(DataType::Bool, 0);
        assert!(b.push_u64(1).is_err());
        b.push_bool(true).unwrap();
    }

    #[test]
    fn columns_become_tensors() {
        let c = Column::F32(vec![1.0, 2.0, 3.0, 4.0]);
        let t = c.into_tensor(&[2, 2]).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        let s = Column::Bytes(vec!["a".into(), "b".into()]);
        let t = s.into_tensor(&[2, 1]).unwrap();
        assert_eq!(t.shape(), &[2, 1]);
        assert!(Column::F32(vec![1.0]).into_tensor(&[2]).is_err());
    }

    #[test]
    fn append_moves_elements() {
        let mut a = Column::I64(vec![1]);
        let mut b = Column::I64(vec![2, 3]);
        a.append(&mut b);
        assert_eq!(a, Column::I64(vec![1, 2, 3]));
        assert!(b.is_empty());
    }
}
