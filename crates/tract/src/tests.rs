//! The tract engine on the fixtures: what it builds, how it plans, what it refuses.

use std::sync::Arc;

use prost::Message;
use serve_runtime::datatype::DataType;
use serve_runtime::metadata::ModelMeta;
use serve_runtime::source::Source;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::engine::*;
use crate::fixtures;

#[test]
fn every_datatype_has_its_tract_type() {
    for d in DataType::ALL {
        assert_eq!(datatype_of(datum(d)), Some(d));
    }
    assert_eq!(datatype_of(DatumType::TDim), Some(DataType::I64));
}

fn build_bytes(bytes: Vec<u8>) -> Result<TractPlan, String> {
    let meta = ModelMeta::from_onnx(&bytes).unwrap();
    build(&Source::Bytes("test", bytes.into()), &meta, true).map_err(|e| e.to_string())
}

fn run(model: &Arc<TypedRunnableModel>, x: Tensor) -> TVec<TValue> {
    model.run(tvec!(x.into_tvalue())).unwrap()
}

#[test]
fn symbolic_batch_serves_any_batch_size() {
    let plan = build_bytes(fixtures::iris_like()).unwrap();
    assert!(plan.mergeable() && plan.pinned().is_none());
    let general = plan.any_batch().unwrap();
    for n in [0usize, 1, 7] {
        let out = run(general, Tensor::zero::<f32>(&[n, 4]).unwrap());
        assert_eq!(out[0].shape(), &[n, 3]);
    }
}

#[test]
fn a_plan_for_one_row_sits_next_to_the_general_one_and_agrees_with_it() {
    let plan = build_bytes(fixtures::iris_like()).unwrap();
    let TractPlan::General {
        any,
        one_row: Some(single),
        ..
    } = &plan
    else {
        panic!("{plan:?}")
    };
    assert!(Arc::ptr_eq(single, plan.one_row()));
    assert!(Arc::ptr_eq(any, plan.any_batch().unwrap()));
    assert!(Arc::ptr_eq(single, plan.row_by_row().unwrap()));
    let x = tensor2(&[[1.0f32, 2.0, 3.0, 4.0]]);
    let a = run(single, x.clone());
    let b = run(any, x);
    assert_eq!(a[0], b[0]);
    // Bound to one row: another batch size is refused by the plan.
    let two = Tensor::zero::<f32>(&[2, 4]).unwrap();
    assert!(single.run(tvec!(two.into_tvalue())).is_err());
}

#[test]
fn models_without_a_batch_dimension_have_only_the_general_plan() {
    let plan = build_bytes(fixtures::fixed_shape()).unwrap();
    let TractPlan::General {
        any, one_row: None, ..
    } = &plan
    else {
        panic!("{plan:?}")
    };
    assert!(plan.row_by_row().is_none());
    assert!(Arc::ptr_eq(any, plan.one_row()));
}

#[test]
fn a_batch_tract_cannot_type_symbolically_is_pinned_to_one() {
    // The premise: tract refuses the graph for a symbolic batch.
    let bytes = fixtures::shape_from_input(false);
    let meta = ModelMeta::from_onnx(&bytes).unwrap();
    let proto = pb::ModelProto::decode(&bytes[..]).unwrap();
    let Err(Failure::Typing(e)) =
        build_with(&serve_onnx_ml::onnx(), &proto, None, &meta, true, false)
    else {
        panic!("tract now types this graph for any batch: the fixture proves nothing");
    };
    assert!(e.contains("Reshape"), "{e}");

    let plan = build_bytes(bytes).unwrap();
    assert!(plan.any_batch().is_none() && !plan.mergeable());
    assert_eq!(plan.pinned(), Some(e.as_str()));
    assert!(plan.row_by_row().is_some());
    let x = Tensor::from_shape(&[1, 2, 3], &[1.0f32, 2., 3., 4., 5., 6.]).unwrap();
    let out = run(plan.one_row(), x);
    assert_eq!(out[0].shape(), &[1, 6]);

    // An output the file declares as one fixed row is not per input row.
    let plan = build_bytes(fixtures::shape_from_input(true)).unwrap();
    assert!(plan.pinned().is_some() && plan.row_by_row().is_none());
}

#[test]
fn inputs_whose_batch_the_file_names_differently_share_one_batch() {
    let bytes = fixtures::separate_batch_names();
    let plan = build_bytes(bytes.clone()).unwrap();
    assert!(plan.mergeable() && plan.row_by_row().is_some() && plan.pinned().is_none());
    let inputs: TVec<TValue> = (0..5)
        .map(|i| {
            Tensor::from_shape(&[8, 1], &[i as f32; 8])
                .unwrap()
                .into_tvalue()
        })
        .collect();
    let out = plan.any_batch().unwrap().run(inputs).unwrap();
    assert_eq!(out[0].shape(), &[8, 5]);
    assert_eq!(out[1].to_plain_array_view::<f32>().unwrap()[[7, 0]], 10.0);

    // As the file declares them (manifest `batch = false`), the five names are five
    // sizes that the Concat cannot join.
    let meta = ModelMeta::from_onnx(&bytes).unwrap();
    let e = build(&Source::Bytes("test", bytes.into()), &meta, false).unwrap_err();
    assert!(
        e.message().starts_with("tract cannot build the model"),
        "{e}"
    );
    assert!(!e.message().contains("pinned"), "{e}");
}

#[test]
fn without_a_batch_dimension_a_request_is_never_merged_or_split() {
    // The file names its first dimension N, as serve's own batch symbol is named: still no
    // batch when the manifest (or config.pbtxt's max_batch_size 0) says there is none.
    let bytes = fixtures::iris_like();
    let meta = ModelMeta::from_onnx(&bytes).unwrap();
    let plan = build(&Source::Bytes("test", bytes.into()), &meta, false).unwrap();
    assert!(!plan.mergeable() && plan.row_by_row().is_none());
    assert!(plan.any_batch().is_some(), "rows still run, as one call");
}

#[test]
fn string_inputs_load_in_tract_onnx() {
    let plan = build_bytes(fixtures::records()).unwrap();
    assert!(plan.mergeable());
}

#[test]
fn unimplemented_operators_are_named_with_their_node() {
    let e = build_bytes(fixtures::unimplemented_op()).unwrap_err();
    assert!(
        e.starts_with("tract does not implement the operator FancyOp (node \"FancyOp_y\"); "),
        "{e}"
    );
    assert!(e.contains("ZipMap"), "{e}");
}

#[test]
fn contradicting_value_info_is_ignored_on_retry() {
    let plan = build_bytes(fixtures::conflicting_value_info()).unwrap();
    let x = Tensor::zero::<f32>(&[2, 4]).unwrap();
    let out = run(plan.any_batch().unwrap(), x);
    assert_eq!(out[0].shape(), &[2, 3]);
}

#[test]
fn typing_failures_say_tract_cannot_build() {
    let e = build_bytes(fixtures::mistyped()).unwrap_err();
    assert!(e.starts_with("tract cannot build the model"), "{e}");
}

#[test]
fn outputs_not_per_row_make_a_model_unbatchable() {
    assert!(!build_bytes(fixtures::reduce_all()).unwrap().mergeable());
    assert!(!build_bytes(fixtures::fixed_shape()).unwrap().mergeable());
    assert!(build_bytes(fixtures::variable_row()).unwrap().mergeable());
}
