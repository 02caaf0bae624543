//! OneHot, the standard operator (domain `ai.onnx`, opsets 9 and 11), answering as
//! onnxruntime's onehot.cc does; it replaces tract's own, which panics on an index out of
//! range (tf2onnx exports Keras' CategoryEncoding with it, and a category the model never
//! saw is such an index).
//!
//! Inputs `indices`, `depth` and `values` (`[off, on]`); attribute `axis` (default -1). The
//! output is `indices`' shape with `depth` inserted at `axis`, of `values`' type: `on` where
//! the position along `axis` is the index, `off` elsewhere.
//!
//! As onnxruntime (checked against onnxruntime 1.31):
//! - an index in `[-depth, -1]` counts back from `depth`, in opset 9 too; any other index out
//!   of `[0, depth - 1]` gives an all-`off` slice;
//! - a float index is not converted to an integer (the specification says it is): it is
//!   compared with each position converted to its type, after `depth` (converted to its
//!   type as well) is added to a negative one, so 1.5, 2.9, -0.5 and NaN give an all-`off`
//!   slice while -1.0 is `depth - 1`;
//! - `depth` is a scalar or a 1-element rank-1 tensor, converted to int64 as C++ does (a
//!   float truncated toward zero; NaN, a float out of int64's range or a uint64 above
//!   int64's maximum becomes negative), and must then be positive;
//! - `values` is a rank-1 tensor of exactly two elements;
//! - `indices` has rank 1 at least, and `axis` is in `[-rank - 1, rank]` (`rank` being
//!   `indices`' rank);
//! - an empty `indices` gives an empty output.
//!
//! Over onnxruntime, which has kernels for a few combinations of types only (int64, int32
//! and float indices; int64, int32, float and string values): every numeric type is taken
//! for `indices` and `depth`, and `values` may be bool, numeric or string, as the
//! specification allows; a float16 index is compared as float, a double one as double.
//!
//! serve needs `depth` when the graph is typed, to know the output's shape: it must be a
//! constant (an initializer or a `Constant`, as tf2onnx and torch export it); a `depth`
//! computed at run time is refused then, naming the node.

use std::ops::Range;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::kernel::{Kernel, Parsed, parsed};

/// The parser registered for `OneHot`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(OneHot::from_node(node)?)
}

#[derive(Debug)]
struct OneHot {
    node: String,
    /// Where `depth` goes in the output's shape, negative counting from the end.
    axis: i64,
}

/// The numeric types taken for `indices` and `depth`.
fn is_numeric(dt: DatumType) -> bool {
    use DatumType::*;
    matches!(
        dt,
        I8 | I16 | I32 | I64 | U8 | U16 | U32 | U64 | F16 | F32 | F64
    )
}

/// The types taken for `values`.
fn is_value_type(dt: DatumType) -> bool {
    is_numeric(dt) || matches!(dt, DatumType::Bool | DatumType::String)
}

impl OneHot {
    fn from_node(node: &NodeProto) -> TractResult<OneHot> {
        Ok(OneHot {
            node: node.name.clone(),
            axis: node.get_attr_opt::<i64>("axis")?.unwrap_or(-1),
        })
    }

    fn check_types(
        &self,
        indices: DatumType,
        depth: DatumType,
        values: DatumType,
    ) -> TractResult<()> {
        self.check_indices_type(indices)?;
        self.check_depth_type(depth)?;
        self.check_values_type(values)
    }

    fn check_indices_type(&self, dt: DatumType) -> TractResult<()> {
        ensure!(
            is_numeric(dt),
            "OneHot node \"{}\": indices must be numeric, not {dt:?}",
            self.node
        );
        Ok(())
    }

    fn check_depth_type(&self, dt: DatumType) -> TractResult<()> {
        ensure!(
            is_numeric(dt),
            "OneHot node \"{}\": depth must be numeric, not {dt:?}",
            self.node
        );
        Ok(())
    }

    fn check_values_type(&self, dt: DatumType) -> TractResult<()> {
        ensure!(
            is_value_type(dt),
            "OneHot node \"{}\": values must be bool, numeric or string, not {dt:?}",
            self.node
        );
        Ok(())
    }

    /// The output axis `depth` goes to, for indices of this rank.
    fn axis(&self, rank: usize) -> TractResult<usize> {
        ensure!(
            rank >= 1,
            "OneHot node \"{}\": indices must have rank 1 at least (as onnxruntime), not 0",
            self.node
        );
        let out_rank = rank as i64 + 1;
        ensure!(
            (-out_rank..out_rank).contains(&self.axis),
            "OneHot node \"{}\": axis {} is out of [{}, {rank}] for indices of rank {rank}",
            self.node,
            self.axis,
            -out_rank
        );
        Ok(if self.axis < 0 {
            self.axis + out_rank
        } else {
            self.axis
        } as usize)
    }

    /// The depth a `depth` tensor gives.
    fn depth(&self, depth: &Tensor) -> TractResult<usize> {
        self.check_depth_type(depth.datum_type())?;
        ensure!(
            depth.rank() == 0 || (depth.rank() == 1 && depth.len() == 1),
            "OneHot node \"{}\": depth must be a scalar or a 1-element tensor, not of shape {:?}",
            self.node,
            depth.shape()
        );
        let view = depth.try_as_plain_ram()?;
        let value = match depth.datum_type() {
            DatumType::I8 => i64::from(view.as_slice::<i8>()?[0]),
            DatumType::I16 => i64::from(view.as_slice::<i16>()?[0]),
            DatumType::I32 => i64::from(view.as_slice::<i32>()?[0]),
            DatumType::I64 => view.as_slice::<i64>()?[0],
            DatumType::U8 => i64::from(view.as_slice::<u8>()?[0]),
            DatumType::U16 => i64::from(view.as_slice::<u16>()?[0]),
            DatumType::U32 => i64::from(view.as_slice::<u32>()?[0]),
            // C++'s conversion: above int64's maximum, it wraps to a negative depth.
            DatumType::U64 => view.as_slice::<u64>()?[0] as i64,
            DatumType::F16 => float_to_int64(f64::from(view.as_slice::<f16>()?[0].to_f32())),
            DatumType::F32 => float_to_int64(f64::from(view.as_slice::<f32>()?[0])),
            DatumType::F64 => float_to_int64(view.as_slice::<f64>()?[0]),
            dt => bail!(
                "OneHot node \"{}\": depth must be numeric, not {dt:?}",
                self.node
            ),
        };
        ensure!(
            value > 0,
            "OneHot node \"{}\": depth must be positive, not {value}",
            self.node
        );
        usize::try_from(value)
            .map_err(|_| format_err!("OneHot node \"{}\": depth {value} is too large", self.node))
    }

    fn check_values_shape(&self, shape: &[usize]) -> TractResult<()> {
        ensure!(
            shape == [2],
            "OneHot node \"{}\": values must be [off, on], a rank-1 tensor of 2 elements, not \
             of shape {shape:?}",
            self.node
        );
        Ok(())
    }

    fn check_values_fact(&self, values: &TypedFact) -> TractResult<()> {
        ensure!(
            values.rank() == 1,
            "OneHot node \"{}\": values must be [off, on], a rank-1 tensor of 2 elements, not \
             of rank {}",
            self.node,
            values.rank()
        );
        if let Ok(n) = values.shape[0].to_usize() {
            self.check_values_shape(&[n])?;
        }
        Ok(())
    }

    /// The constant depth of a typed graph.
    fn typed_depth(&self, depth: &TypedFact) -> TractResult<usize> {
        let Some(depth) = &depth.konst else {
            bail!(
                "OneHot node \"{}\": depth must be a constant (an initializer or a Constant \
                 node) for serve to know the output's shape when it types the graph; here it \
                 is computed at run time",
                self.node
            )
        };
        self.depth(depth)
    }
}

/// A float converted to int64 as C++'s `static_cast` compiles on x86-64: truncated toward
/// zero, and int64's minimum for NaN and for what int64 cannot hold.
fn float_to_int64(v: f64) -> i64 {
    // 2^63, exact in double: every double in [-2^63, 2^63) truncates into int64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// The position an integer index sets on, if any: a negative index counts back from
/// `depth`, and what is still out of `[0, depth)` sets none.
fn int_position(index: i128, depth: usize) -> Range<usize> {
    let depth_i = depth as i128;
    let index = if index < 0 { index + depth_i } else { index };
    if (0..depth_i).contains(&index) {
        let p = index as usize;
        p..p + 1
    } else {
        0..0
    }
}

/// A float type of indices, with the arithmetic onnxruntime does in it.
trait FloatIndex: Copy + PartialOrd {
    const ZERO: Self;
    /// The position converted to this type (rounded to nearest, as C++ converts).
    fn of(position: usize) -> Self;
    /// Truncated toward zero, saturating (for a finite, non-negative value).
    fn truncated(self) -> usize;
    fn add(self, other: Self) -> Self;
}

impl FloatIndex for f32 {
    const ZERO: f32 = 0.0;
    fn of(position: usize) -> f32 {
        position as f32
    }
    fn truncated(self) -> usize {
        self as usize
    }
    fn add(self, other: f32) -> f32 {
        self + other
    }
}

impl FloatIndex for f64 {
    const ZERO: f64 = 0.0;
    fn of(position: usize) -> f64 {
        position as f64
    }
    fn truncated(self) -> usize {
        self as usize
    }
    fn add(self, other: f64) -> f64 {
        self + other
    }
}

/// The positions a float index sets on: those that, converted to the index's type, equal
/// the index (with `depth` added to a negative one, in that type), as onnxruntime compares
/// them. Only an integral value has any; beyond 2^24 (float) several positions convert to
/// the same value, and all of them are set, as onnxruntime does.
fn float_positions<T: FloatIndex>(index: T, depth: usize) -> Range<usize> {
    let index = if index < T::ZERO {
        index.add(T::of(depth))
    } else {
        index
    };
    // Written so that NaN, which fails every comparison, sets none.
    if !(index >= T::ZERO && index <= T::of(depth - 1)) {
        return 0..0;
    }
    let p = index.truncated().min(depth - 1);
    if T::of(p) != index {
        return 0..0;
    }
    // Positions converting to one value are contiguous; a handful at most.
    let mut lo = p;
    while lo > 0 && T::of(lo - 1) == index {
        lo -= 1;
    }
    let mut hi = p + 1;
    while hi < depth && T::of(hi) == index {
        hi += 1;
    }
    lo..hi
}

/// The positions each index sets on, in `indices`' order.
fn positions(indices: &Tensor, depth: usize) -> TractResult<Vec<Range<usize>>> {
    fn ints<T: Datum + Copy + Into<i128>>(
        x: &Tensor,
        depth: usize,
    ) -> TractResult<Vec<Range<usize>>> {
        let x = x.try_as_plain_ram()?;
        Ok(x.as_slice::<T>()?
            .iter()
            .map(|&v| int_position(v.into(), depth))
            .collect())
    }
    fn floats<T: Datum + FloatIndex>(x: &Tensor, depth: usize) -> TractResult<Vec<Range<usize>>> {
        let x = x.try_as_plain_ram()?;
        Ok(x.as_slice::<T>()?
            .iter()
            .map(|&v| float_positions(v, depth))
            .collect())
    }
    match indices.datum_type() {
        DatumType::I8 => ints::<i8>(indices, depth),
        DatumType::I16 => ints::<i16>(indices, depth),
        DatumType::I32 => ints::<i32>(indices, depth),
        DatumType::I64 => ints::<i64>(indices, depth),
        DatumType::U8 => ints::<u8>(indices, depth),
        DatumType::U16 => ints::<u16>(indices, depth),
        DatumType::U32 => ints::<u32>(indices, depth),
        DatumType::U64 => ints::<u64>(indices, depth),
        DatumType::F16 => {
            let x = indices.try_as_plain_ram()?;
            Ok(x.as_slice::<f16>()?
                .iter()
                .map(|v| float_positions(v.to_f32(), depth))
                .collect())
        }
        DatumType::F32 => floats::<f32>(indices, depth),
        DatumType::F64 => floats::<f64>(indices, depth),
        dt => bail!("indices must be numeric, not {dt:?}"),
    }
}

/// The output's layout: `indices` seen as `[prefix, suffix]` (split at the axis), the
/// output as `[prefix, depth, suffix]`.
struct Layout {
    depth: usize,
    suffix: usize,
    len: usize,
}

/// The output: `off` everywhere, `on` at each index's positions.
fn fill<T: Datum + Clone>(
    values: &Tensor,
    positions: &[Range<usize>],
    layout: &Layout,
    shape: &[usize],
) -> TractResult<Tensor> {
    let values = values.try_as_plain_ram()?;
    let [off, on] = values.as_slice::<T>()? else {
        bail!("values must have 2 elements");
    };
    let mut y: Vec<T> = Vec::new();
    y.try_reserve_exact(layout.len)
        .map_err(|e| format_err!("cannot allocate the output ({} elements): {e}", layout.len))?;
    y.resize(layout.len, off.clone());
    for (ix, span) in positions.iter().enumerate() {
        let (a, b) = (ix / layout.suffix, ix % layout.suffix);
        for p in span.clone() {
            y[(a * layout.depth + p) * layout.suffix + b] = on.clone();
        }
    }
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, y)?.into_tensor())
}

impl Kernel for OneHot {
    fn name(&self) -> &'static str {
        "OneHot"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        s.given(&inputs[0].datum_type, move |_, dt| {
            self.check_indices_type(dt)
        })?;
        s.given(&inputs[1].datum_type, move |_, dt| {
            self.check_depth_type(dt)
        })?;
        s.given(&inputs[2].datum_type, move |_, dt| {
            self.check_values_type(dt)
        })?;
        s.equals(&outputs[0].datum_type, &inputs[2].datum_type)?;
        s.given(&inputs[2].rank, move |_, rank| {
            ensure!(
                rank == 1,
                "OneHot node \"{}\": values must be [off, on], a rank-1 tensor of 2 elements, \
                 not of rank {rank}",
                self.node
            );
            Ok(())
        })?;
        s.equals(inputs[0].rank.bex() + 1, &outputs[0].rank)?;
        s.given(&inputs[0].rank, move |s, rank| {
            let rank = rank as usize;
            let axis = self.axis(rank)?;
            for ix in 0..rank {
                let out = if ix < axis { ix } else { ix + 1 };
                s.equals(&inputs[0].shape[ix], &outputs[0].shape[out])?;
            }
            s.given(&inputs[1].value, move |s, depth| {
                let depth = self.depth(&depth)?;
                s.equals(&outputs[0].shape[axis], depth.to_dim())
            })
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == 3,
            "OneHot node \"{}\" takes 3 inputs (indices, depth, values), not {}",
            self.node,
            inputs.len()
        );
        let (indices, depth, values) = (inputs[0], inputs[1], inputs[2]);
        self.check_types(indices.datum_type, depth.datum_type, values.datum_type)?;
        self.check_values_fact(values)?;
        let axis = self.axis(indices.rank())?;
        let depth = self.typed_depth(depth)?;
        let mut shape: TVec<TDim> = indices.shape.iter().cloned().collect();
        shape.insert(axis, depth.to_dim());
        Ok(tvec!(values.datum_type.fact(shape)))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == 3,
            "OneHot node \"{}\" takes 3 inputs (indices, depth, values), not {}",
            self.node,
            inputs.len()
        );
        let (indices, depth, values) = args_3!(inputs);
        self.check_types(
            indices.datum_type(),
            depth.datum_type(),
            values.datum_type(),
        )?;
        self.check_values_shape(values.shape())?;
        let depth = self.depth(&depth)?;
        let axis = self.axis(indices.rank())?;
        let mut shape: TVec<usize> = indices.shape().into();
        shape.insert(axis, depth);
        let suffix: usize = indices.shape()[axis..].iter().product();
        let len = indices.len().checked_mul(depth).ok_or_else(|| {
            format_err!(
                "OneHot node \"{}\": the output of {} indices by depth {depth} is too large",
                self.node,
                indices.len()
            )
        })?;
        let layout = Layout { depth, suffix, len };
        let positions = positions(&indices, depth)
            .map_err(|e| format_err!("OneHot node \"{}\": {e}", self.node))?;
        let y = match values.datum_type() {
            DatumType::Bool => fill::<bool>(&values, &positions, &layout, &shape),
            DatumType::I8 => fill::<i8>(&values, &positions, &layout, &shape),
            DatumType::I16 => fill::<i16>(&values, &positions, &layout, &shape),
            DatumType::I32 => fill::<i32>(&values, &positions, &layout, &shape),
            DatumType::I64 => fill::<i64>(&values, &positions, &layout, &shape),
            DatumType::U8 => fill::<u8>(&values, &positions, &layout, &shape),
            DatumType::U16 => fill::<u16>(&values, &positions, &layout, &shape),
            DatumType::U32 => fill::<u32>(&values, &positions, &layout, &shape),
            DatumType::U64 => fill::<u64>(&values, &positions, &layout, &shape),
            DatumType::F16 => fill::<f16>(&values, &positions, &layout, &shape),
            DatumType::F32 => fill::<f32>(&values, &positions, &layout, &shape),
            DatumType::F64 => fill::<f64>(&values, &positions, &layout, &shape),
            DatumType::String => fill::<String>(&values, &positions, &layout, &shape),
            dt => bail!(
                "OneHot node \"{}\": values must be bool, numeric or string, not {dt:?}",
                self.node
            ),
        }
        .map_err(|e| format_err!("OneHot node \"{}\": {e}", self.node))?;
        Ok(tvec!(y.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{eval, int, node};

    fn one_hot(axis: Option<i64>) -> OneHot {
        let attrs = axis.map(|a| vec![int("axis", a)]).unwrap_or_default();
        OneHot::from_node(&node("OneHot", attrs)).unwrap()
    }

    fn run(op: &OneHot, indices: Tensor, depth: Tensor, values: Tensor) -> TractResult<Tensor> {
        Ok(eval(op, vec![indices, depth, values])?.remove(0))
    }

    fn i64s(t: &Tensor) -> Vec<i64> {
        t.try_as_plain_ram()
            .unwrap()
            .as_slice::<i64>()
            .unwrap()
            .to_vec()
    }

    /// The rows of a 2-D one-hot output of int64 `[0, 1]`.
    fn rows(t: &Tensor) -> Vec<Vec<i64>> {
        let width = t.shape()[1];
        i64s(t).chunks(width).map(|r| r.to_vec()).collect()
    }

    fn off_on() -> Tensor {
        tensor1(&[0i64, 1])
    }

    #[test]
    fn an_index_in_range_sets_its_position() {
        let y = run(
            &one_hot(None),
            tensor1(&[0i64, 2, 1]),
            tensor0(3i64),
            off_on(),
        )
        .unwrap();
        assert_eq!(y.shape(), [3, 3]);
        assert_eq!(rows(&y), [[1, 0, 0], [0, 0, 1], [0, 1, 0]]);
    }

    #[test]
    fn a_negative_index_in_range_counts_back_from_depth() {
        let y = run(
            &one_hot(None),
            tensor1(&[-1i64, -3, -2]),
            tensor0(3i64),
            off_on(),
        )
        .unwrap();
        assert_eq!(rows(&y), [[0, 0, 1], [1, 0, 0], [0, 1, 0]]);
    }

    #[test]
    fn an_index_out_of_range_on_either_side_gives_all_off() {
        let indices = tensor1(&[3i64, 1000, i64::MAX, -4, -1000, i64::MIN, 1]);
        let y = run(&one_hot(None), indices, tensor0(3i64), tensor1(&[-1i64, 9])).unwrap();
        assert_eq!(
            rows(&y),
            [
                [-1, -1, -1],
                [-1, -1, -1],
                [-1, -1, -1],
                [-1, -1, -1],
                [-1, -1, -1],
                [-1, -1, -1],
                [-1, 9, -1]
            ]
        );
        // int32 and unsigned indices alike.
        let y = run(
            &one_hot(None),
            tensor1(&[3i32, -4, -1]),
            tensor0(3i32),
            off_on(),
        )
        .unwrap();
        assert_eq!(rows(&y), [[0, 0, 0], [0, 0, 0], [0, 0, 1]]);
        let y = run(
            &one_hot(None),
            tensor1(&[3u8, 255, 0]),
            tensor0(3i64),
            off_on(),
        )
        .unwrap();
        assert_eq!(rows(&y), [[0, 0, 0], [0, 0, 0], [1, 0, 0]]);
    }

    /// onnxruntime's answers for `[[0, 1, 2], [2, -1, 5]]`, depth 3, values `[5, 7]`.
    #[test]
    fn the_axis_places_depth_in_the_output() {
        let indices = || tensor2(&[[0i64, 1, 2], [2, -1, 5]]);
        let values = || tensor1(&[5i64, 7]);
        let axis_0 = [7, 5, 5, 5, 5, 5, 5, 7, 5, 5, 5, 5, 5, 5, 7, 7, 7, 5];
        let axis_1 = [7, 5, 5, 5, 7, 5, 5, 5, 7, 5, 5, 5, 5, 5, 5, 7, 7, 5];
        let axis_2 = [7, 5, 5, 5, 7, 5, 5, 5, 7, 5, 5, 7, 5, 5, 7, 5, 5, 5];
        for (axis, shape, expected) in [
            (Some(0), [3, 2, 3], axis_0),
            (Some(-3), [3, 2, 3], axis_0),
            (Some(1), [2, 3, 3], axis_1),
            (Some(-2), [2, 3, 3], axis_1),
            (Some(2), [2, 3, 3], axis_2),
            (Some(-1), [2, 3, 3], axis_2),
            (None, [2, 3, 3], axis_2),
        ] {
            let y = run(&one_hot(axis), indices(), tensor0(3i64), values()).unwrap();
            assert_eq!(y.shape(), shape, "axis {axis:?}");
            assert_eq!(i64s(&y), expected, "axis {axis:?}");
        }
        for axis in [3, -4] {
            let e = run(&one_hot(Some(axis)), indices(), tensor0(3i64), values())
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("axis {axis} is out of [-3, 2]")), "{e}");
        }
    }

    /// onnxruntime's answers: a float index is compared, not truncated.
    #[test]
    fn a_float_index_sets_on_only_where_it_is_integral() {
        let indices = tensor1(&[
            1.5f32,
            1.0,
            -1.0,
            -0.5,
            f32::NAN,
            2.9,
            -3.0,
            -4.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
        ]);
        let y = run(&one_hot(None), indices, tensor0(3i64), off_on()).unwrap();
        assert_eq!(
            rows(&y),
            [
                [0, 0, 0],
                [0, 1, 0],
                [0, 0, 1],
                [0, 0, 0],
                [0, 0, 0],
                [0, 0, 0],
                [1, 0, 0],
                [0, 0, 0],
                [1, 0, 0],
                [0, 0, 0],
                [0, 0, 0],
                [0, 0, 0]
            ]
        );
        let y = run(
            &one_hot(None),
            tensor1(&[2.0f64, -2.5]),
            tensor0(3i64),
            off_on(),
        )
        .unwrap();
        assert_eq!(rows(&y), [[0, 0, 1], [0, 0, 0]]);
    }

    /// onnxruntime 1.31 with depth 16777218 sets both 16777216 and 16777217 (which floats
    /// cannot tell apart) for 16777216.0, and for -1.0 (16777217 rounded in float).
    #[test]
    fn a_large_float_index_sets_every_position_equal_to_it_in_float() {
        assert_eq!(
            float_positions(16_777_216f32, 16_777_218),
            16_777_216..16_777_218
        );
        assert_eq!(float_positions(-1f32, 16_777_218), 16_777_216..16_777_218);
        assert_eq!(
            float_positions(16_777_216f32, 16_777_217),
            16_777_216..16_777_217
        );
        assert_eq!(float_positions(16_777_218f32, 16_777_217), 0..0);
        assert_eq!(float_positions(5f64, 16_777_218), 5..6);
    }

    #[test]
    fn values_give_the_output_type() {
        let y = run(
            &one_hot(None),
            tensor1(&[1i64, 5]),
            tensor0(2i64),
            tensor1(&[0.25f32, 4.5]),
        )
        .unwrap();
        assert_eq!(y, tensor2(&[[0.25f32, 4.5], [0.25, 0.25]]));
        let y = run(
            &one_hot(None),
            tensor1(&[0i64]),
            tensor0(2i64),
            tensor1(&[i64::MIN, i64::MAX]),
        )
        .unwrap();
        assert_eq!(y, tensor2(&[[i64::MAX, i64::MIN]]));
        let y = run(
            &one_hot(None),
            tensor1(&[0i64]),
            tensor0(2i64),
            tensor1(&[0.5f64, 2.0]),
        )
        .unwrap();
        assert_eq!(y, tensor2(&[[2.0f64, 0.5]]));
        let values = tensor1(&["a".to_string(), "b".to_string()]);
        let y = run(&one_hot(None), tensor1(&[-1i64]), tensor0(2i64), values).unwrap();
        assert_eq!(y, tensor2(&[["a".to_string(), "b".to_string()]]));
    }

    #[test]
    fn depth_is_a_positive_scalar_or_1_element_tensor_converted_as_onnxruntime() {
        let op = one_hot(None);
        // tf2onnx gives an int32 [1].
        let y = run(&op, tensor1(&[3i64]), tensor1(&[4i32]), off_on()).unwrap();
        assert_eq!(rows(&y), [[0, 0, 0, 1]]);
        // A float depth is truncated.
        let y = run(&op, tensor1(&[2i64, 3]), tensor0(3.7f32), off_on()).unwrap();
        assert_eq!(rows(&y), [[0, 0, 1], [0, 0, 0]]);
        for depth in [
            tensor0(0i64),
            tensor0(-2i64),
            tensor0(f32::NAN),
            tensor0(1e30f64),
            tensor0(u64::MAX),
        ] {
            let e = run(&op, tensor1(&[0i64]), depth, off_on())
                .unwrap_err()
                .to_string();
            assert!(e.contains("depth must be positive"), "{e}");
        }
        let e = run(&op, tensor1(&[0i64]), tensor1(&[3i64, 3]), off_on())
            .unwrap_err()
            .to_string();
        assert!(e.contains("scalar or a 1-element tensor"), "{e}");
        let e = run(&op, tensor1(&[0i64]), tensor0(true), off_on())
            .unwrap_err()
            .to_string();
        assert!(e.contains("depth must be numeric"), "{e}");
    }

    #[test]
    fn values_indices_and_axis_are_checked() {
        let op = one_hot(None);
        let e = run(&op, tensor1(&[0i64]), tensor0(3i64), tensor1(&[0i64, 1, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("values must be [off, on]"), "{e}");
        let e = run(&op, tensor0(0i64), tensor0(3i64), off_on())
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1 at least"), "{e}");
        let e = run(&op, tensor1(&[true]), tensor0(3i64), off_on())
            .unwrap_err()
            .to_string();
        assert!(e.contains("indices must be numeric"), "{e}");
    }

    #[test]
    fn empty_indices_give_an_empty_output() {
        let indices = Tensor::zero::<i64>(&[0, 2]).unwrap();
        let y = run(&one_hot(Some(1)), indices, tensor0(3i64), off_on()).unwrap();
        assert_eq!(y.shape(), [0, 3, 2]);
    }

    /// A graph of the op on a source `x` of dims `dims` (`None` for the batch symbol `N`),
    /// with a constant `depth` (or, with `None`, a source input) and constant values.
    fn graph(
        op: OneHot,
        dims: &[Option<usize>],
        depth: Option<Tensor>,
    ) -> TractResult<(TypedModel, TDim)> {
        let mut model = InferenceModel::default();
        let n: TDim = model.sym("N").into();
        let shape: TVec<TDim> = dims
            .iter()
            .map(|d| d.map(TDim::from).unwrap_or(n.clone()))
            .collect();
        let x = model.add_source("x", i64::fact(shape).into())?;
        let depth = match depth {
            Some(t) => model.add_const("depth", t)?,
            None => model.add_source("depth", i64::fact([0usize; 0]).into())?,
        };
        let values = model.add_const("values", tensor1(&[0f32, 1.0]))?;
        let y = model.wire_node("n", crate::kernel::inference_op(op), &[x, depth, values])?;
        model.select_output_outlets(&y)?;
        Ok((model.into_typed()?, n))
    }

    #[test]
    fn the_batch_symbol_is_kept_in_the_output_facts() {
        for (axis, expected) in [(-1, [0, 1, 4]), (1, [0, 4, 1]), (0, [4, 0, 1])] {
            let (typed, n) = graph(
                one_hot(Some(axis)),
                &[None, Some(1)],
                Some(tensor1(&[4i32])),
            )
            .unwrap();
            let fact = typed
                .outlet_fact(typed.output_outlets().unwrap()[0])
                .unwrap();
            assert_eq!(fact.datum_type, DatumType::F32);
            let dims: TVec<TDim> = expected
                .iter()
                .map(|&d| if d == 0 { n.clone() } else { TDim::from(d) })
                .collect();
            assert_eq!(fact.shape.to_tvec(), dims, "axis {axis}");
        }
    }

    #[test]
    fn a_typed_graph_runs_with_a_concrete_batch() {
        let (typed, _) = graph(one_hot(None), &[None, Some(1)], Some(tensor1(&[4i32]))).unwrap();
        let plan = typed.into_runnable().unwrap();
        let y = plan
            .run(tvec!(tensor2(&[[1i64], [5], [-1]]).into_tvalue()))
            .unwrap()
            .remove(0)
            .into_tensor();
        let on = |p: usize| {
            let mut row = [0f32; 4];
            if p < 4 {
                row[p] = 1.0;
            }
            [row]
        };
        let expected: Vec<[[f32; 4]; 1]> = vec![on(1), on(9), on(3)];
        assert_eq!(y.shape(), [3, 1, 4]);
        assert_eq!(
            y.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(),
            expected.concat().concat()
        );
    }

    #[test]
    fn a_depth_computed_at_run_time_is_refused_when_typing_naming_the_node() {
        let e = graph(one_hot(None), &[None, Some(1)], None)
            .map(|_| ())
            .unwrap_err();
        let e = format!("{e:?}");
        assert!(
            e.contains("OneHot node \"n\": depth must be a constant"),
            "{e}"
        );
    }
}
