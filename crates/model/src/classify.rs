//! Triton's classification extension: an output asked with `parameters.classification: K`
//! is answered as its K highest values in each batch row, highest first, each the BYTES
//! element `"value:index"`, or `"value:index:label"` when the output has labels (its
//! `label_filename` in config.pbtxt, else the classes of a ZipMap'd classifier). The answer's
//! shape is `[rows, K]` for a batched output, `[K]` otherwise; K is capped at the row's
//! length. Values are written as Triton writes them (C++'s `std::to_string`: six decimals
//! for floats), and equal values keep their index order.

use serve_runtime::tensor::Slice;

use crate::error::ApiError;
use crate::metadata::Classes;
use crate::outputs::OutView;

/// The labels of an output's columns, when it has some.
pub enum Labels<'a> {
    /// A label file's lines.
    Lines(&'a [String]),
    /// A classifier's classes.
    Classes(&'a Classes),
}

impl Labels<'_> {
    fn get(&self, i: usize) -> Option<String> {
        match self {
            Labels::Lines(lines) => lines.get(i).cloned(),
            Labels::Classes(Classes::Strings(s)) => s.get(i).cloned(),
            Labels::Classes(Classes::Ints(v)) => v.get(i).map(i64::to_string),
        }
    }
}

/// The classification of `view`: the answer's shape and its elements. `batched`: the
/// output's first dimension is the batch (each row is classified on its own).
pub fn classify(
    view: &OutView<'_>,
    k: usize,
    batched: bool,
    labels: Option<&Labels<'_>>,
) -> Result<(Vec<usize>, Vec<String>), ApiError> {
    let values = numbers(&view.elements)?;
    let total = values.len();
    let rows = if batched && !view.shape.is_empty() {
        view.shape[0]
    } else {
        1
    };
    let width = total.checked_div(rows).unwrap_or(0);
    let k = k.min(width);
    let mut elements = Vec::with_capacity(rows * k);
    let mut order: Vec<usize> = Vec::with_capacity(width);
    for row in values.chunks(width.max(1)).take(rows) {
        order.clear();
        order.extend(0..row.len());
        // Highest first; NaN ranks last; a stable sort keeps equal values in index order.
        order.sort_by(|&a, &b| {
            let (a, b) = (&row[a], &row[b]);
            b.rank()
                .partial_cmp(&a.rank())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for &i in &order[..k] {
            let mut element = format!("{}:{i}", row[i].text());
            if let Some(label) = labels.and_then(|l| l.get(i)) {
                element.push(':');
                element.push_str(&label);
            }
            elements.push(element);
        }
    }
    let shape = if batched && !view.shape.is_empty() {
        vec![rows, k]
    } else {
        vec![k]
    };
    Ok((shape, elements))
}

/// One value to rank: a float, or an integer (ranked and written exactly).
#[derive(Clone, Copy)]
enum Number {
    Float(f64),
    Int(i128),
}

impl Number {
    fn rank(&self) -> f64 {
        match *self {
            Number::Float(f) if f.is_nan() => f64::NEG_INFINITY,
            Number::Float(f) => f,
            Number::Int(i) => i as f64,
        }
    }

    fn text(&self) -> String {
        match *self {
            Number::Float(f) => format!("{f:.6}"),
            Number::Int(i) => i.to_string(),
        }
    }
}

fn numbers(elements: &Slice<'_>) -> Result<Vec<Number>, ApiError> {
    fn ints<T: Copy + Into<i128>>(v: &[T]) -> Vec<Number> {
        v.iter().map(|&x| Number::Int(x.into())).collect()
    }
    Ok(match elements {
        Slice::U8(v) => ints(v),
        Slice::U16(v) => ints(v),
        Slice::U32(v) => ints(v),
        Slice::U64(v) => ints(v),
        Slice::I8(v) => ints(v),
        Slice::I16(v) => ints(v),
        Slice::I32(v) => ints(v),
        Slice::I64(v) => ints(v),
        Slice::F16(v) => v.iter().map(|x| Number::Float(x.to_f64())).collect(),
        Slice::F32(v) => v.iter().map(|&x| Number::Float(f64::from(x))).collect(),
        Slice::F64(v) => v.iter().map(|&x| Number::Float(x)).collect(),
        Slice::Bool(_) | Slice::Bytes(_) => {
            // Refused when the request was read; an engine answering another type than
            // the metadata said is the server's fault.
            return Err(ApiError::internal(
                "classification of an output that is not numeric",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::Outputs;
    use crate::tensor::Tensor;
    use std::sync::Arc;

    fn view_of(t: Tensor) -> Outputs {
        Outputs::whole(Arc::new(vec![t]))
    }

    #[test]
    fn ranks_each_row_highest_first() {
        let t = Tensor::new(&[2, 3], vec![0.1f32, 0.7, 0.2, 0.5, 0.25, 0.25]).unwrap();
        let out = view_of(t);
        let view = out.view(0).unwrap();
        let (shape, elements) = classify(&view, 2, true, None).unwrap();
        assert_eq!(shape, [2, 2]);
        assert_eq!(
            elements,
            ["0.700000:1", "0.200000:2", "0.500000:0", "0.250000:1"]
        );
        // K past the row's length is the row's length; labels are added.
        let lines = ["setosa".to_owned(), "versicolor".into(), "virginica".into()];
        let labels = Labels::Lines(&lines);
        let (shape, elements) = classify(&view, 5, true, Some(&labels)).unwrap();
        assert_eq!(shape, [2, 3]);
        assert_eq!(elements[0], "0.700000:1:versicolor");
        // Unbatched: the whole tensor is one row.
        let (shape, elements) = classify(&view, 1, false, None).unwrap();
        assert_eq!(shape, [1]);
        assert_eq!(elements, ["0.700000:1"]);
    }

    #[test]
    fn integers_are_exact_and_classes_label() {
        let t = Tensor::new(&[1, 3], vec![3i64, 9, i64::MAX]).unwrap();
        let out = view_of(t);
        let classes = Classes::Ints(vec![10, 20, 30]);
        let labels = Labels::Classes(&classes);
        let (_, elements) = classify(&out.view(0).unwrap(), 2, true, Some(&labels)).unwrap();
        assert_eq!(elements, [format!("{}:2:30", i64::MAX), "9:1:20".into()]);
    }
}
