//! Test helpers for the preprocessing and linear operators: nodes with attributes, a kernel
//! typed in a graph whose batch is the symbol `N`, and evaluated.

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

/// Evaluates a kernel on one tensor: its first output.
pub(crate) fn run<K: Kernel>(kernel: &K, x: Tensor) -> TractResult<Tensor> {
    Ok(eval(kernel, vec![x])?.remove(0))
}

/// The elements of a float tensor.
pub(crate) fn f32s(t: &Tensor) -> Vec<f32> {
    t.try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}
