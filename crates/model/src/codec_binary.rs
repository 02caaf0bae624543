//! The KServe binary tensor data extension, both ways.
//!
//! tritonclient sends inputs as raw little-endian bytes after the JSON header (whose length
//! is the `Inference-Header-Content-Length` header), each input declaring its
//! `binary_data_size`; BYTES elements are each a 4-byte little-endian length and the bytes.
//! Decoding checks every size against the bytes actually present before allocating, so a
//! huge declared shape with a tiny body costs nothing; encoding appends an output's
//! elements to the response the same way.

use crate::column::{Column, INITIAL_CAPACITY};
use crate::datatype::DataType;
use crate::error::ApiError;
use crate::outputs::OutView;

/// Decodes `count` elements of type `dt` from `bytes` (exactly the input's
/// `binary_data_size` bytes). `label` names the input in errors.
pub fn decode(dt: DataType, bytes: &[u8], count: usize, label: &str) -> Result<Column, ApiError> {
    let Some(size) = dt.size() else {
        return decode_strings(bytes, count, label);
    };
    let expected = count.checked_mul(size);
    if expected != Some(bytes.len()) {
        return Err(ApiError::bad_request(format!(
            "input \"{label}\": binary_data_size is {} bytes but its shape holds {} {dt} \
             elements ({} bytes)",
            bytes.len(),
            count,
            expected.map_or("too many".to_string(), |n| n.to_string())
        )));
    }
    macro_rules! le {
        ($v:ident, $t:ty) => {
            Column::$v(
                bytes
                    .chunks_exact(size)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of the type's size")))
                    .collect(),
            )
        };
    }
    Ok(match dt {
        DataType::Bool => Column::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DataType::U8 => Column::U8(bytes.to_vec()),
        DataType::I8 => le!(I8, i8),
        DataType::U16 => le!(U16, u16),
        DataType::I16 => le!(I16, i16),
        DataType::U32 => le!(U32, u32),
        DataType::I32 => le!(I32, i32),
        DataType::U64 => le!(U64, u64),
        DataType::I64 => le!(I64, i64),
        DataType::F16 => Column::F16(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        DataType::F32 => le!(F32, f32),
        DataType::F64 => le!(F64, f64),
        DataType::Bytes => unreachable!("BYTES has no fixed size"),
    })
}

fn decode_strings(mut bytes: &[u8], count: usize, label: &str) -> Result<Column, ApiError> {
    // Each element takes at least its 4-byte length: the body bounds the allocation.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 4).min(INITIAL_CAPACITY));
    while !bytes.is_empty() {
        if out.len() == count {
            return Err(ApiError::bad_request(format!(
                "input \"{label}\": binary data holds more than the {count} BYTES elements of \
                 its shape"
            )));
        }
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(ApiError::bad_request(format!(
                "input \"{label}\": BYTES element {} is cut short (its 4-byte length is \
                 incomplete)",
                out.len()
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(ApiError::bad_request(format!(
                "input \"{label}\": BYTES element {} declares {len} bytes but only {} remain",
                out.len(),
                rest.len()
            )));
        }
        let (s, rest) = rest.split_at(len);
        let s = std::str::from_utf8(s).map_err(|_| {
            ApiError::bad_request(format!(
                "input \"{label}\": BYTES element {} is not UTF-8 (serve carries BYTES elements as text)",
                out.len()
            ))
        })?;
        out.push(s.to_owned());
        bytes = rest;
    }
    if out.len() != count {
        return Err(ApiError::bad_request(format!(
            "input \"{label}\": binary data holds {} BYTES elements but its shape holds {count}",
            out.len()
        )));
    }
    Ok(Column::Bytes(out))
}

/// Appends the view's elements in the binary format; returns how many bytes were written.
pub fn encode(buf: &mut Vec<u8>, view: &OutView<'_>) -> Result<usize, ApiError> {
    Ok(view.write_le(buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::Outputs;
    use crate::tensor::Tensor;
    use std::sync::Arc;

    #[test]
    fn fixed_size_types_round_trip() {
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let col = decode(DataType::F32, &bytes, 2, "x").unwrap();
        assert_eq!(col, Column::F32(vec![1.5, -2.0]));
        let t = col.into_tensor(&[1, 2]).unwrap();
        let out = Outputs::whole(Arc::new(vec![t]));
        let mut buf = vec![];
        assert_eq!(encode(&mut buf, &out.view(0).unwrap()).unwrap(), 8);
        assert_eq!(buf, bytes);
    }

    #[test]
    fn sizes_must_match_the_shape() {
        let e = decode(DataType::F32, &[0; 12], 4, "input").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("binary_data_size is 12 bytes"), "{e}");
        // A huge declared shape with a tiny body: refused without allocating.
        let e = decode(DataType::F64, &[0; 8], usize::MAX / 2, "x").unwrap_err();
        assert!(e.message().contains("too many"), "{e}");
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let mut b = vec![];
        for s in ["male", "", "é"] {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        let col = decode(DataType::Bytes, &b, 3, "Sex").unwrap();
        assert_eq!(
            col,
            Column::Bytes(vec!["male".into(), "".into(), "é".into()])
        );
        let t = col.into_tensor(&[3]).unwrap();
        let out = Outputs::whole(Arc::new(vec![t]));
        let mut again = vec![];
        encode(&mut again, &out.view(0).unwrap()).unwrap();
        assert_eq!(again, b);
        assert!(decode(DataType::Bytes, &b, 2, "Sex").is_err());
        assert!(decode(DataType::Bytes, &b, 4, "Sex").is_err());
        assert!(decode(DataType::Bytes, &b[..b.len() - 1], 3, "Sex").is_err());
        assert!(decode(DataType::Bytes, &[255, 255, 255, 255, 1], 1, "Sex").is_err());
        assert!(decode(DataType::Bytes, &[1, 0, 0, 0, 0xff], 1, "Sex").is_err());
    }

    #[test]
    fn bool_and_half_use_their_sizes() {
        let col = decode(DataType::Bool, &[0, 1, 2], 3, "b").unwrap();
        assert_eq!(col, Column::Bool(vec![false, true, true]));
        let h = half::f16::from_f32(0.5).to_le_bytes();
        let col = decode(DataType::F16, &h, 1, "h").unwrap();
        assert_eq!(col, Column::F16(vec![half::f16::from_f32(0.5)]));
        let t = Tensor::new(&[2], vec![true, false]).unwrap();
        let out = Outputs::whole(Arc::new(vec![t]));
        let mut buf = vec![];
        encode(&mut buf, &out.view(0).unwrap()).unwrap();
        assert_eq!(buf, vec![1, 0]);
    }
}
