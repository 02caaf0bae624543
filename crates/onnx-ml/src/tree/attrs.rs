//! Reading a tree ensemble's attributes, with errors that name the operator, the node, the
//! attribute, what was expected and what was found.
//!
//! Opset 3 gives every float list a double `*_as_tensor` twin (`nodes_values`,
//! `nodes_hitrates`, `class_weights`/`target_weights`, `base_values`); a node gives one form
//! or the other, never both (onnx's shape inference refuses both, and so does
//! onnxruntime). Values are read as `f64` whichever the form, which loses nothing, and
//! [`Values::double`] says which form they came in.

use std::fmt::Display;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::post::PostTransform;

/// The attributes of one node.
#[derive(Clone, Copy)]
pub(super) struct Attrs<'a> {
    op: &'static str,
    node: &'a NodeProto,
    ctx: &'a ParsingContext<'a>,
}

/// A float attribute read from its list or its tensor form.
#[derive(Debug, Default)]
pub(super) struct Values {
    pub(super) values: Vec<f64>,
    /// Given as a double tensor (and so only usable with a double input, as in
    /// onnxruntime).
    pub(super) double: bool,
}

impl<'a> Attrs<'a> {
    pub(super) fn new(
        op: &'static str,
        node: &'a NodeProto,
        ctx: &'a ParsingContext<'a>,
    ) -> Attrs<'a> {
        Attrs { op, node, ctx }
    }

    pub(super) fn op(&self) -> &'static str {
        self.op
    }

    /// The node's name, kept by the operator for its evaluation errors.
    pub(super) fn node_name(&self) -> String {
        self.node.name.clone()
    }

    /// Refuses the node because of one attribute.
    pub(super) fn refuse<T>(
        &self,
        attr: &str,
        expected: impl Display,
        found: impl Display,
    ) -> TractResult<T> {
        bail!(
            "{} node \"{}\": attribute `{attr}`: expected {expected}, found {found}",
            self.op,
            self.node.name
        )
    }

    /// A list of ints, empty when absent (as onnxruntime reads them).
    pub(super) fn ints(&self, attr: &str) -> TractResult<&'a [i64]> {
        Ok(self.node.get_attr_opt_slice::<i64>(attr)?.unwrap_or(&[]))
    }

    pub(super) fn int(&self, attr: &str) -> TractResult<Option<i64>> {
        self.node.get_attr_opt(attr)
    }

    pub(super) fn string(&self, attr: &str) -> TractResult<Option<&'a str>> {
        self.node.get_attr_opt(attr)
    }

    pub(super) fn strings(&self, attr: &str) -> TractResult<Option<Vec<String>>> {
        self.node.get_attr_opt_vec(attr)
    }

    /// `post_transform` (NONE when absent), refused by name when unknown (onnxruntime
    /// refuses unknown names too).
    pub(super) fn post_transform(&self) -> TractResult<PostTransform> {
        PostTransform::parse(self.string("post_transform")?).map_err(|e| {
            format_err!(
                "{} node \"{}\": attribute `post_transform`: {e}",
                self.op,
                self.node.name
            )
        })
    }

    /// Refuses a list whose length is not the one the other attributes imply.
    pub(super) fn expect_len(
        &self,
        attr: &str,
        len: usize,
        expected: usize,
        why: &str,
    ) -> TractResult<()> {
        if len != expected {
            self.refuse(attr, format!("{expected} values ({why})"), len)?;
        }
        Ok(())
    }

    /// A float attribute from its list (`list`) or its tensor form (`tensor`), empty when
    /// neither is given.
    pub(super) fn values(&self, list: &str, tensor: &str) -> TractResult<Values> {
        self.exclusive(list, tensor)?;
        if let Some(floats) = self.node.get_attr_opt_slice::<f32>(list)? {
            return Ok(Values {
                values: floats.iter().map(|&v| f64::from(v)).collect(),
                double: false,
            });
        }
        let Some(proto) = self.node.get_attr_opt::<&TensorProto>(tensor)? else {
            return Ok(Values::default());
        };
        let loaded = self.ctx.load_tensor(proto)?;
        let double = match loaded.datum_type() {
            DatumType::F64 => true,
            DatumType::F32 => false,
            other => {
                return self.refuse(
                    tensor,
                    "a double (or float) tensor",
                    format!("a {other:?} tensor"),
                );
            }
        };
        let doubles = loaded.cast_to::<f64>()?;
        let values = super::plain::<f64>(&doubles)?.to_vec();
        Ok(Values { values, double })
    }

    /// Refuses a node that gives both forms of one attribute.
    pub(super) fn exclusive(&self, list: &str, tensor: &str) -> TractResult<()> {
        let given = |name: &str| self.node.attribute.iter().any(|a| a.name == name);
        if given(list) && given(tensor) {
            self.refuse(tensor, format!("either `{list}` or `{tensor}`"), "both")?;
        }
        Ok(())
    }
}
