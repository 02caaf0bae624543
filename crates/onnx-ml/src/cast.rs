//! `Cast` to INT64 as data, not as tract's symbolic dimension type.
//!
//! tract parses every `Cast(to=INT64)` as a cast to `TDim`, its type for shape arithmetic,
//! so that a shape read with `Shape` keeps its symbols through a cast. But converters also
//! cast data to int64: skl2onnx casts an integer category column before its OneHotEncoder,
//! and no ONNX-ML operator takes `TDim`. onnxruntime gives int64 data in both cases. So this
//! parser keeps tract's behaviour where it matters, a cast of a `TDim` (a shape) stays `TDim`,
//! and casts anything else to plain `i64`. Casts to other types are tract's own.

use std::sync::OnceLock;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::Parser;

/// The parser registered for `Cast`.
pub(crate) fn parse(ctx: &ParsingContext, node: &NodeProto) -> crate::kernel::Parsed {
    let to = node.get_attr::<DatumType>("to")?;
    if to == i64::datum_type() {
        Ok((expand(CastToInt64), vec![]))
    } else {
        tract_cast()(ctx, node)
    }
}

/// tract's own `Cast` parser, for every other target type.
fn tract_cast() -> Parser {
    static CAST: OnceLock<Parser> = OnceLock::new();
    *CAST.get_or_init(|| {
        *tract_onnx::onnx()
            .op_register
            .0
            .get("Cast")
            .expect("tract-onnx registers Cast")
    })
}

/// The type a cast to INT64 gives an input of type `from`.
fn target(from: DatumType) -> DatumType {
    if from == TDim::datum_type() {
        TDim::datum_type()
    } else {
        i64::datum_type()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CastToInt64;

impl Expansion for CastToInt64 {
    fn name(&self) -> StaticName {
        "Cast(INT64)".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].rank, &inputs[0].rank)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        s.given(&inputs[0].datum_type, move |s, from| {
            s.equals(&outputs[0].datum_type, target(from))
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let from = model.outlet_fact(inputs[0])?.datum_type;
        model.wire_node(
            prefix,
            tract_onnx::tract_core::ops::cast::cast(target(from)),
            inputs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_output(input: DatumType) -> DatumType {
        let mut model = InferenceModel::default();
        let n = model.sym("N");
        let x = model
            .add_source("x", InferenceFact::dt_shape(input, shapefactoid!(n, 1)))
            .unwrap();
        let y = model.wire_node("cast", expand(CastToInt64), &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let typed = model.into_typed().unwrap();
        typed.output_fact(0).unwrap().datum_type
    }

    #[test]
    fn data_becomes_int64_and_shapes_stay_symbolic() {
        assert_eq!(typed_output(f32::datum_type()), i64::datum_type());
        assert_eq!(typed_output(i64::datum_type()), i64::datum_type());
        assert_eq!(typed_output(String::datum_type()), i64::datum_type());
        assert_eq!(typed_output(TDim::datum_type()), TDim::datum_type());
    }

    #[test]
    fn floats_are_truncated_as_onnxruntime_casts_them() {
        let cast = tract_onnx::tract_core::ops::cast::cast(target(f32::datum_type()));
        let x = tensor1(&[2.7f32, -1.5, 3.0]).into_tvalue();
        let out = cast.eval_out_of_plan(tvec!(x)).unwrap().unwrap();
        assert_eq!(*out[0], tensor1(&[2i64, -1, 3]));
    }
}
