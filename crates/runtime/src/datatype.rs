//! The tensor element types the server speaks, and their two spellings: the KServe V2 name
//! (`FP32`) and the ONNX `TensorProto.DataType` code (1); each engine maps them to its own
//! (tract's in `serve-tract`).
//!
//! One enum keeps them in step, so that a datatype accepted in a request is always one
//! every engine can carry and one the metadata can name.

use std::fmt;

/// A tensor element type of the KServe V2 protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOL`: one byte per element on the wire.
    Bool,
    /// `UINT8`.
    U8,
    /// `UINT16`.
    U16,
    /// `UINT32`.
    U32,
    /// `UINT64`.
    U64,
    /// `INT8`.
    I8,
    /// `INT16`.
    I16,
    /// `INT32`.
    I32,
    /// `INT64`.
    I64,
    /// `FP16`: half precision, carried as `half::f16`.
    F16,
    /// `FP32`.
    F32,
    /// `FP64`.
    F64,
    /// `BYTES`: strings; tract carries them as UTF-8 `String`s.
    Bytes,
}

impl DataType {
    /// Every datatype, for tests and error messages.
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// The KServe V2 name.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a KServe V2 name (exact spelling, as Triton requires).
    pub fn from_v2(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The size of one element in the binary tensor extension; `None` for BYTES, whose
    /// elements are length-prefixed.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
            DataType::Bytes => return None,
        })
    }

    /// From an ONNX `TensorProto.DataType` code; `None` for the types tract or the protocol
    /// cannot carry (complex, bfloat16, float8...).
    pub fn from_onnx(code: i32) -> Option<DataType> {
        Some(match code {
            1 => DataType::F32,
            2 => DataType::U8,
            3 => DataType::I8,
            4 => DataType::U16,
            5 => DataType::I16,
            6 => DataType::I32,
            7 => DataType::I64,
            8 => DataType::Bytes,
            9 => DataType::Bool,
            10 => DataType::F16,
            11 => DataType::F64,
            12 => DataType::U32,
            13 => DataType::U64,
            _ => return None,
        })
    }

    /// The ONNX name of a type code, for error messages about types we cannot carry.
    pub fn onnx_name(code: i32) -> String {
        let known = match code {
            14 => "COMPLEX64",
            15 => "COMPLEX128",
            16 => "BFLOAT16",
            0 => "UNDEFINED",
            17..=23 => "FLOAT8/INT4",
            _ => "",
        };
        if known.is_empty() {
            format!("type code {code}")
        } else {
            known.to_string()
        }
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::F16 | DataType::F32 | DataType::F64)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DataType::ALL {
            assert_eq!(DataType::from_v2(d.as_str()), Some(d));
        }
        assert_eq!(DataType::from_v2("fp32"), None);
    }

    #[test]
    fn onnx_codes_map_to_the_protocol() {
        assert_eq!(DataType::from_onnx(1), Some(DataType::F32));
        assert_eq!(DataType::from_onnx(8), Some(DataType::Bytes));
        assert_eq!(DataType::from_onnx(16), None);
        assert_eq!(DataType::onnx_name(16), "BFLOAT16");
    }
}
