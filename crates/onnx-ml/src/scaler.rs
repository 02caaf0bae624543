//! Scaler: `(x - offset) * scale`, feature by feature, as onnxruntime's scaler.cc computes
//! it.
//!
//! onnxruntime over the specification:
//! - `offset` is required as much as `scale`: both must have the same length (the
//!   specification calls `offset` optional; onnxruntime refuses a node without it);
//! - the lists have one value per feature or a single value for all, the features being
//!   dimension 1 (dimension 0 for a 1-D input), checked when the input's width is known;
//! - the arithmetic is the input type's: a double input is offset and scaled in double,
//!   then rounded to float; integers become float first.
//!
//! Input float, double, int64 or int32, any rank from 1; output float, the input's shape.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::kernel::{Kernel, inference_op};

/// The input types onnxruntime's Scaler takes.
const INPUT_TYPES: [DatumType; 4] = [
    DatumType::F32,
    DatumType::F64,
    DatumType::I64,
    DatumType::I32,
];

/// The parser registered for `Scaler`.
pub(crate) fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((inference_op(Scaler::from_node(node)?), vec![]))
}

#[derive(Debug)]
struct Scaler {
    node: String,
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    fn from_node(node: &NodeProto) -> TractResult<Scaler> {
        let scale = node.get_attr_opt_vec::<f32>("scale")?.unwrap_or_default();
        let offset = node.get_attr_opt_vec::<f32>("offset")?.unwrap_or_default();
        if scale.is_empty() {
            bail!(
                "Scaler node \"{}\": attribute scale: expected at least one value, found none",
                node.name
            );
        }
        if offset.len() != scale.len() {
            bail!(
                "Scaler node \"{}\": attribute offset: expected as many values as scale ({}), found {}",
                node.name,
                scale.len(),
                offset.len()
            );
        }
        Ok(Scaler {
            node: node.name.clone(),
            offset,
            scale,
        })
    }

    /// The features of a shape as onnxruntime counts them: dimension 1, or 0 for a 1-D input.
    fn feature_axis(rank: usize) -> usize {
        if rank == 1 { 0 } else { 1 }
    }

    /// Checks that the parameters fit `width` features: one per feature, or one for all.
    fn check_width(&self, width: usize) -> TractResult<()> {
        ensure!(
            self.scale.len() == 1 || self.scale.len() == width,
            "Scaler node \"{}\" has {} scale and offset values but its input has {width} features: \
             expected one per feature or a single one",
            self.node,
            self.scale.len()
        );
        Ok(())
    }

    fn check_type(&self, dt: DatumType) -> TractResult<()> {
        if INPUT_TYPES.contains(&dt) {
            Ok(())
        } else {
            Err(self.type_error(dt))
        }
    }

    fn type_error(&self, dt: DatumType) -> TractError {
        format_err!(
            "Scaler node \"{}\" takes float, double, int64 or int32, not {dt:?}",
            self.node
        )
    }

    fn check_rank(&self, rank: usize) -> TractResult<()> {
        ensure!(
            rank >= 1,
            "Scaler node \"{}\" takes a tensor of rank 1 or more, not a scalar",
            self.node
        );
        Ok(())
    }

    /// Scales `x`, of `width` features per row, with `f(x, offset, scale)`.
    fn scale_with<T: Copy>(
        &self,
        x: &[T],
        width: usize,
        f: impl Fn(T, f32, f32) -> f32,
    ) -> Vec<f32> {
        let mut y = Vec::with_capacity(x.len());
        if self.scale.len() == 1 {
            y.extend(x.iter().map(|&v| f(v, self.offset[0], self.scale[0])));
        } else {
            for row in x.chunks(width.max(1)) {
                let params = self.offset.iter().zip(&self.scale);
                y.extend(row.iter().zip(params).map(|(&v, (&o, &s))| f(v, o, s)));
            }
        }
        y
    }
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.given(&inputs[0].datum_type, move |_, dt| self.check_type(dt))?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        self.check_type(input.datum_type)?;
        self.check_rank(input.rank())?;
        if let Ok(width) = input.shape[Self::feature_axis(input.rank())].to_usize() {
            self.check_width(width)?;
        }
        Ok(tvec!(f32::fact(input.shape.iter())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        self.check_rank(x.rank())?;
        let width = x.shape()[Self::feature_axis(x.rank())];
        self.check_width(width)?;
        let view = x.try_as_plain_ram()?;
        // The C++ arithmetic of `(x - offset) * scale` with float parameters: double stays
        // double until the result is stored; integers are converted to float.
        let y = match x.datum_type() {
            DatumType::F32 => {
                self.scale_with(view.as_slice::<f32>()?, width, |v, o, s| (v - o) * s)
            }
            DatumType::F64 => self.scale_with(view.as_slice::<f64>()?, width, |v, o, s| {
                ((v - o as f64) * s as f64) as f32
            }),
            DatumType::I64 => {
                self.scale_with(view.as_slice::<i64>()?, width, |v, o, s| (v as f32 - o) * s)
            }
            DatumType::I32 => {
                self.scale_with(view.as_slice::<i32>()?, width, |v, o, s| (v as f32 - o) * s)
            }
            dt => return Err(self.type_error(dt)),
        };
        Ok(tvec!(
            tract_ndarray::ArrayD::from_shape_vec(x.shape(), y)?
                .into_tensor()
                .into_tvalue()
        ))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test helpers for the preprocessing and linear operators: nodes with attributes, and a
    //! kernel typed in a graph whose batch is the symbol `N`.

    use tract_onnx::pb::attribute_proto::AttributeType;
    use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto};
    use tract_onnx::prelude::*;
    use tract_onnx::tract_hir::internal::{DimLike, bail};

    use crate::kernel::{Kernel, inference_op};

    /// A node named `n` of `op_type` with these attributes.
    pub(crate) fn node(op_type: &str, attributes: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            name: "n".into(),
            op_type: op_type.into(),
            attribute: attributes,
            ..NodeProto::default()
        }
    }

    fn attr(name: &str, ty: AttributeType) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: ty as i32,
            ..AttributeProto::default()
        }
    }

    pub(crate) fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            floats: v.to_vec(),
            ..attr(name, AttributeType::Floats)
        }
    }

    pub(crate) fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            ints: v.to_vec(),
            ..attr(name, AttributeType::Ints)
        }
    }

    pub(crate) fn strings(name: &str, v: &[&str]) -> AttributeProto {
        let strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
        AttributeProto {
            strings,
            ..attr(name, AttributeType::Strings)
        }
    }

    pub(crate) fn float(name: &str, v: f32) -> AttributeProto {
        AttributeProto {
            f: v,
            ..attr(name, AttributeType::Float)
        }
    }

    pub(crate) fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            i: v,
            ..attr(name, AttributeType::Int)
        }
    }

    pub(crate) fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            s: v.as_bytes().to_vec(),
            ..attr(name, AttributeType::String)
        }
    }

    pub(crate) fn tensor(name: &str, t: TensorProto) -> AttributeProto {
        AttributeProto {
            t: Some(t),
            ..attr(name, AttributeType::Tensor)
        }
    }

    /// The type and dims of the kernel's outputs once a graph feeding it inputs of these
    /// types and dims is typed; `None` stands for the batch symbol `N`, in the inputs and in
    /// the outputs (where any other symbolic dim is an error).
    pub(crate) fn typed_outputs<K: Kernel>(
        kernel: K,
        inputs: &[(DatumType, &[Option<usize>])],
    ) -> TractResult<Vec<(DatumType, Vec<Option<usize>>)>> {
        let mut model = InferenceModel::default();
        let n: TDim = model.sym("N").into();
        let mut wires = tvec!();
        for (ix, (dt, shape)) in inputs.iter().enumerate() {
            let dims: TVec<TDim> = shape
                .iter()
                .map(|d| d.map(TDim::from).unwrap_or(n.clone()))
                .collect();
            wires.push(model.add_source(format!("x{ix}"), dt.fact(dims).into())?);
        }
        let outputs = model.wire_node("op", inference_op(kernel), &wires)?;
        model.select_output_outlets(&outputs)?;
        let typed = model.into_typed()?;
        let mut facts = vec![];
        for outlet in typed.output_outlets()? {
            let fact = typed.outlet_fact(*outlet)?;
            let dims = fact.shape.iter().map(|d| match d.to_usize() {
                Ok(d) => Ok(Some(d)),
                Err(_) if *d == n => Ok(None),
                Err(_) => bail!("output dim {d} is neither concrete nor N"),
            });
            facts.push((fact.datum_type, dims.collect::<TractResult<_>>()?));
        }
        Ok(facts)
    }

    /// Evaluates a kernel on these tensors.
    pub(crate) fn eval<K: Kernel>(kernel: &K, inputs: Vec<Tensor>) -> TractResult<TVec<Tensor>> {
        let outputs = kernel.eval(inputs.into_iter().map(|t| t.into_tvalue()).collect())?;
        Ok(outputs.into_iter().map(|t| t.into_tensor()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn scaler(offset: &[f32], scale: &[f32]) -> Scaler {
        Scaler::from_node(&node(
            "Scaler",
            vec![floats("offset", offset), floats("scale", scale)],
        ))
        .unwrap()
    }

    fn run(s: &Scaler, x: Tensor) -> TractResult<Vec<f32>> {
        Ok(eval(s, vec![x])?[0]
            .try_as_plain_ram()?
            .as_slice::<f32>()?
            .to_vec())
    }

    #[test]
    fn each_feature_is_offset_then_scaled() {
        let s = scaler(&[1.0, 2.0], &[2.0, 0.5]);
        let y = run(&s, tensor2(&[[3f32, 4.0], [0.0, -2.0]])).unwrap();
        assert_eq!(y, [4.0, 1.0, -2.0, -2.0]);
    }

    #[test]
    fn a_single_value_applies_to_every_feature() {
        let s = scaler(&[1.0], &[3.0]);
        assert_eq!(
            run(&s, tensor2(&[[1f32, 2.0, 3.0]])).unwrap(),
            [0.0, 3.0, 6.0]
        );
    }

    #[test]
    fn a_1d_input_is_one_row_of_features() {
        let s = scaler(&[1.0, 2.0], &[1.0, 1.0]);
        assert_eq!(run(&s, tensor1(&[1f32, 2.0])).unwrap(), [0.0, 0.0]);
    }

    #[test]
    fn doubles_are_scaled_in_double_and_integers_as_float() {
        let s = scaler(&[1.0], &[1.0]);
        // 2^24 + 1 is no float: converted first, it rounds to 2^24 before losing 1.
        assert_eq!(run(&s, tensor1(&[16_777_217f64])).unwrap(), [16_777_216.0]);
        assert_eq!(run(&s, tensor1(&[16_777_217i64])).unwrap(), [16_777_215.0]);
        assert_eq!(run(&s, tensor1(&[16_777_217i32])).unwrap(), [16_777_215.0]);
    }

    #[test]
    fn a_width_that_fits_neither_rule_is_an_error() {
        let s = scaler(&[0.0, 0.0], &[1.0, 1.0]);
        let e = run(&s, tensor2(&[[1f32, 2.0, 3.0]]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 features"), "{e}");
        let e = typed_outputs(
            scaler(&[0.0, 0.0], &[1.0, 1.0]),
            &[(DatumType::F32, &[None, Some(3)])],
        );
        assert!(e.is_err());
    }

    #[test]
    fn missing_or_mismatched_lists_are_refused_at_load() {
        let e = Scaler::from_node(&node("Scaler", vec![floats("scale", &[1.0])])).unwrap_err();
        assert!(e.to_string().contains("attribute offset"), "{e}");
        let e = Scaler::from_node(&node("Scaler", vec![floats("offset", &[1.0])])).unwrap_err();
        assert!(e.to_string().contains("attribute scale"), "{e}");
    }

    #[test]
    fn types_as_float_with_the_batch_symbol_kept() {
        let facts = typed_outputs(
            scaler(&[0.0; 3], &[1.0; 3]),
            &[(DatumType::I64, &[None, Some(3)])],
        )
        .unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(3)])]);
        let e = typed_outputs(
            scaler(&[0.0], &[1.0]),
            &[(DatumType::String, &[None, Some(3)])],
        );
        assert!(e.is_err());
    }
}
