//! LabelEncoder: maps each element of X through a table of keys to values, as
//! onnxruntime's label_encoder.h/.cc does, in the three shapes the operator has had:
//!
//! - ai.onnx.ml version 1: `classes_strings`; a string becomes its position in the list
//!   (int64, `default_int64` when absent) and an int64 the string at that position
//!   (`default_string` when out of range). A string listed twice is at its last position.
//! - versions 2 and 3: one `keys_*` list and one `values_*` list of the same length, of
//!   strings, int64s or floats each; a miss gives `default_*` of the values' type (-1,
//!   "_Unused", -0.0). A key listed twice maps to its **first** value (onnxruntime keeps
//!   the first; version 4 of the specification says the last).
//! - version 4: also the `keys_tensor`, `values_tensor` and `default_tensor` attributes,
//!   which bring doubles (and int16 values), exclusive with the lists. A NaN key matches a
//!   NaN (it never does before version 4). A double table's default is `default_tensor` or
//!   -0.0: onnxruntime ignores `default_float` there.
//!
//! Float keys match as `==` does: -0.0 finds the key 0.0. The pairs of key and value types
//! are the ones onnxruntime has kernels for; others are refused when the graph is parsed,
//! and so are attributes that the specification (onnxruntime's type inference) refuses.
//! The input's type must be the keys'; the output has the input's shape and the values'
//! type.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The parser registered for `LabelEncoder`.
pub(crate) fn parse(ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    let version = ctx
        .model
        .opset_import
        .iter()
        .find(|o| o.domain == "ai.onnx.ml")
        .map(|o| o.version);
    let Some(version) = version else {
        bail!(
            "LabelEncoder node \"{}\": the model imports no ai.onnx.ml opset to tell its version",
            node.name
        )
    };
    parsed(LabelEncoder::from_node(node, version, |t| {
        ctx.load_tensor(t)
    })?)
}

#[derive(Debug)]
struct LabelEncoder {
    node: String,
    /// One table, or (version 1) one per input type.
    tables: Vec<Table>,
}

/// Keys, each the position of its value in `values`, whose last element is the default.
#[derive(Debug)]
struct Table {
    keys: Keys,
    values: Tensor,
}

#[derive(Debug)]
enum Keys {
    Ints(HashMap<i64, usize>),
    Strings(HashMap<String, usize>),
    Floats(FloatKeys),
    Doubles(FloatKeys),
}

/// Float or double keys, by the bits of their value as a double, -0.0 as 0.0, and the
/// position of a NaN key when NaN matches NaN.
#[derive(Debug, Default)]
struct FloatKeys {
    positions: HashMap<u64, usize>,
    nan: Option<usize>,
}

impl FloatKeys {
    fn new(keys: impl Iterator<Item = f64>, nan_matches: bool) -> FloatKeys {
        let mut table = FloatKeys::default();
        for (position, key) in keys.enumerate() {
            if key.is_nan() {
                if nan_matches {
                    table.nan.get_or_insert(position);
                }
            } else {
                table.positions.entry(Self::bits(key)).or_insert(position);
            }
        }
        table
    }

    fn bits(key: f64) -> u64 {
        if key == 0.0 { 0 } else { key.to_bits() }
    }

    fn get(&self, key: f64) -> Option<usize> {
        if key.is_nan() {
            self.nan
        } else {
            self.positions.get(&Self::bits(key)).copied()
        }
    }
}

impl Keys {
    /// Keys from a 1-D tensor, the first of equal keys kept (versions 2 and later).
    fn first_of(keys: &Tensor, nan_matches: bool) -> TractResult<Keys> {
        fn first<K: Clone + Eq + std::hash::Hash>(keys: &[K]) -> HashMap<K, usize> {
            let mut map = HashMap::with_capacity(keys.len());
            for (position, key) in keys.iter().enumerate() {
                map.entry(key.clone()).or_insert(position);
            }
            map
        }
        let view = keys.try_as_plain_ram()?;
        Ok(match keys.datum_type() {
            DatumType::I64 => Keys::Ints(first(view.as_slice::<i64>()?)),
            DatumType::String => Keys::Strings(first(view.as_slice::<String>()?)),
            DatumType::F32 => Keys::Floats(FloatKeys::new(
                view.as_slice::<f32>()?.iter().map(|&k| k as f64),
                nan_matches,
            )),
            DatumType::F64 => Keys::Doubles(FloatKeys::new(
                view.as_slice::<f64>()?.iter().copied(),
                nan_matches,
            )),
            dt => bail!("keys of type {dt:?}"),
        })
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Keys::Ints(_) => DatumType::I64,
            Keys::Strings(_) => DatumType::String,
            Keys::Floats(_) => DatumType::F32,
            Keys::Doubles(_) => DatumType::F64,
        }
    }

    /// The position of each element of `x` (of the keys' type), `default` for a miss.
    fn positions(&self, x: &Tensor, default: usize) -> TractResult<Vec<usize>> {
        let view = x.try_as_plain_ram()?;
        Ok(match self {
            Keys::Ints(m) => view
                .as_slice::<i64>()?
                .iter()
                .map(|k| *m.get(k).unwrap_or(&default))
                .collect(),
            Keys::Strings(m) => view
                .as_slice::<String>()?
                .iter()
                .map(|k| *m.get(k).unwrap_or(&default))
                .collect(),
            Keys::Floats(f) => view
                .as_slice::<f32>()?
                .iter()
                .map(|&k| f.get(k as f64).unwrap_or(default))
                .collect(),
            Keys::Doubles(f) => view
                .as_slice::<f64>()?
                .iter()
                .map(|&k| f.get(k).unwrap_or(default))
                .collect(),
        })
    }
}

/// The values at `positions`, in `shape`.
fn pick<T: Datum + Clone>(
    values: &Tensor,
    positions: &[usize],
    shape: &[usize],
) -> TractResult<Tensor> {
    let values = values.try_as_plain_ram()?.as_slice::<T>()?;
    let picked = positions.iter().map(|&p| values[p].clone()).collect();
    tensor_of(shape, picked)
}

/// `values` with `default` appended, as one 1-D tensor.
fn with_default(values: &Tensor, default: Tensor) -> TractResult<Tensor> {
    let values = values.clone().into_shape(&[values.len()])?;
    Tensor::stack_tensors(0, &[values, default.into_shape(&[1])?])
}

/// The (key, value) type pairs onnxruntime has a version 4 kernel for.
const V4_PAIRS: [(DatumType, DatumType); 15] = {
    use DatumType::*;
    [
        (I64, I64),
        (I64, String),
        (I64, F32),
        (I64, F64),
        (F32, F32),
        (F32, String),
        (F32, I64),
        (String, I64),
        (String, F32),
        (String, String),
        (String, I16),
        (String, F64),
        (F64, F64),
        (F64, String),
        (F64, I64),
    ]
};

/// The lists a version 2 table is made of, by attribute suffix.
const LIST_TYPES: [(&str, DatumType); 3] = [
    ("strings", DatumType::String),
    ("int64s", DatumType::I64),
    ("floats", DatumType::F32),
];

/// A node's attributes, for the errors that name them.
struct Attrs<'a, F> {
    node: &'a NodeProto,
    load: F,
}

impl<'a, F: Fn(&TensorProto) -> TractResult<Tensor>> Attrs<'a, F> {
    fn refuse<T>(
        &self,
        attr: &str,
        expected: &str,
        found: impl std::fmt::Display,
    ) -> TractResult<T> {
        let node = &self.node.name;
        Err(crate::check::attribute_error(
            "LabelEncoder",
            node,
            attr,
            expected,
            found,
        ))
    }

    /// The list `<prefix>_<type>` as a 1-D tensor, if present.
    fn list(&self, name: &str, dt: DatumType) -> TractResult<Option<Tensor>> {
        let node = self.node;
        Ok(match dt {
            DatumType::String => node.get_attr_opt_vec::<String>(name)?.map(|v| tensor1(&v)),
            DatumType::I64 => node.get_attr_opt_vec::<i64>(name)?.map(|v| tensor1(&v)),
            _ => node.get_attr_opt_vec::<f32>(name)?.map(|v| tensor1(&v)),
        })
    }

    /// The one `<prefix>_*` list present, or `<prefix>_tensor` (version 4): exactly one.
    fn table_part(&self, prefix: &str, tensors: bool) -> TractResult<Tensor> {
        let mut found = vec![];
        for (suffix, dt) in LIST_TYPES {
            let name = format!("{prefix}_{suffix}");
            if let Some(list) = self.list(&name, dt)? {
                found.push((name, list));
            }
        }
        if tensors
            && let Some(proto) = self
                .node
                .get_attr_opt::<&TensorProto>(&format!("{prefix}_tensor"))?
        {
            found.push((
                format!("{prefix}_tensor"),
                self.tensor(&format!("{prefix}_tensor"), proto)?,
            ));
        }
        let names = || {
            found
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let choices = if tensors {
            "strings, int64s, floats or tensor"
        } else {
            "strings, int64s or floats"
        };
        match found.len() {
            1 => Ok(found.remove(0).1),
            0 => self.refuse(
                &format!("{prefix}_*"),
                &format!("one of {prefix}_{choices}"),
                "none",
            ),
            _ => self.refuse(
                &format!("{prefix}_*"),
                &format!("only one of {prefix}_{choices}"),
                names(),
            ),
        }
    }

    /// A tensor attribute of a type a table can hold, loaded.
    fn tensor(&self, name: &str, proto: &TensorProto) -> TractResult<Tensor> {
        let types = [
            DataType::String,
            DataType::Int64,
            DataType::Float,
            DataType::Double,
            DataType::Int16,
        ];
        if !types.iter().any(|t| *t as i32 == proto.data_type) {
            return self.refuse(
                name,
                "a tensor of strings, int64, float, double or int16",
                proto.data_type,
            );
        }
        (self.load)(proto)
    }

    /// The default of a version 2 or 4 table whose values are of type `dt`.
    fn default(&self, dt: DatumType, tensors: bool) -> TractResult<Tensor> {
        if tensors && let Some(proto) = self.node.get_attr_opt::<&TensorProto>("default_tensor")? {
            let default = self.tensor("default_tensor", proto)?;
            if default.datum_type() != dt || default.shape() != [1] {
                let found = format!("{:?} of shape {:?}", default.datum_type(), default.shape());
                return self.refuse(
                    "default_tensor",
                    &format!("one {dt:?} value, shape [1]"),
                    found,
                );
            }
            return Ok(default);
        }
        let node = self.node;
        Ok(match dt {
            DatumType::I64 => tensor0(node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1)),
            DatumType::String => tensor0(
                node.get_attr_opt::<String>("default_string")?
                    .unwrap_or("_Unused".into()),
            ),
            DatumType::F32 => tensor0(node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0)),
            DatumType::F64 => tensor0(-0.0f64),
            _ => tensor0(-1i16),
        })
    }
}

impl LabelEncoder {
    /// The encoder of a node of ai.onnx.ml `version`; `load` loads its tensor attributes.
    fn from_node(
        node: &NodeProto,
        version: i64,
        load: impl Fn(&TensorProto) -> TractResult<Tensor>,
    ) -> TractResult<LabelEncoder> {
        let attrs = Attrs { node, load };
        let tables = if version < 2 {
            Self::classes(&attrs)?
        } else {
            vec![Self::table(&attrs, version >= 4)?]
        };
        Ok(LabelEncoder {
            node: node.name.clone(),
            tables,
        })
    }

    /// Version 1: strings to positions in `classes_strings`, and positions to strings.
    fn classes<F>(attrs: &Attrs<F>) -> TractResult<Vec<Table>>
    where
        F: Fn(&TensorProto) -> TractResult<Tensor>,
    {
        let node = attrs.node;
        let Some(classes) = node.get_attr_opt_vec::<String>("classes_strings")? else {
            return attrs.refuse("classes_strings", "a list of strings (version 1)", "none");
        };
        let n = classes.len();
        // Collected in order, a string listed twice keeps its last position.
        let positions = classes
            .iter()
            .enumerate()
            .map(|(ix, c)| (c.clone(), ix))
            .collect();
        let indices: Vec<i64> = (0..n as i64)
            .chain([node.get_attr_opt("default_int64")?.unwrap_or(-1)])
            .collect();
        let default_string = node
            .get_attr_opt::<String>("default_string")?
            .unwrap_or("_Unused".into());
        let strings: Vec<String> = classes.into_iter().chain([default_string]).collect();
        Ok(vec![
            Table {
                keys: Keys::Strings(positions),
                values: tensor1(&indices),
            },
            Table {
                keys: Keys::Ints((0..n).map(|ix| (ix as i64, ix)).collect()),
                values: tensor1(&strings),
            },
        ])
    }

    /// Versions 2 and later: `keys_*` to `values_*`, then the default.
    fn table<F>(attrs: &Attrs<F>, v4: bool) -> TractResult<Table>
    where
        F: Fn(&TensorProto) -> TractResult<Tensor>,
    {
        let keys = attrs.table_part("keys", v4)?;
        let values = attrs.table_part("values", v4)?;
        if keys.len() != values.len() {
            let expected = format!("as many values as keys ({})", keys.len());
            return attrs.refuse("values_*", &expected, values.len());
        }
        let pair = (keys.datum_type(), values.datum_type());
        let known = if v4 {
            V4_PAIRS.contains(&pair)
        } else {
            pair.0 != DatumType::F64 && pair.1 != DatumType::F64
        };
        if !known {
            let found = format!("{:?} to {:?}", pair.0, pair.1);
            return attrs.refuse(
                "keys_* and values_*",
                "types onnxruntime has a LabelEncoder for",
                found,
            );
        }
        let default = attrs.default(values.datum_type(), v4)?;
        Ok(Table {
            keys: Keys::first_of(&keys, v4)?,
            values: with_default(&values, default)?,
        })
    }

    /// The table for an input of type `dt`.
    fn table_for(&self, dt: DatumType) -> TractResult<&Table> {
        self.tables
            .iter()
            .find(|t| t.keys.datum_type() == dt)
            .ok_or_else(|| {
                let expected: Vec<_> = self
                    .tables
                    .iter()
                    .map(|t| format!("{:?}", t.keys.datum_type()))
                    .collect();
                format_err!(
                    "LabelEncoder node \"{}\" takes {} input (its keys' type), not {dt:?}",
                    self.node,
                    expected.join(" or ")
                )
            })
    }
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.given(&inputs[0].datum_type, move |s, dt| {
            s.equals(
                &outputs[0].datum_type,
                self.table_for(dt)?.values.datum_type(),
            )
        })?;
        s.equals(&outputs[0].shape, &inputs[0].shape)
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let table = self.table_for(inputs[0].datum_type)?;
        Ok(tvec!(
            table.values.datum_type().fact(inputs[0].shape.iter())
        ))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let table = self.table_for(x.datum_type())?;
        let positions = table.keys.positions(&x, table.values.len() - 1)?;
        let y = match table.values.datum_type() {
            DatumType::I64 => pick::<i64>(&table.values, &positions, x.shape())?,
            DatumType::String => pick::<String>(&table.values, &positions, x.shape())?,
            DatumType::F32 => pick::<f32>(&table.values, &positions, x.shape())?,
            DatumType::F64 => pick::<f64>(&table.values, &positions, x.shape())?,
            DatumType::I16 => pick::<i16>(&table.values, &positions, x.shape())?,
            dt => bail!(
                "LabelEncoder node \"{}\" has values of type {dt:?}",
                self.node
            ),
        };
        Ok(tvec!(y.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use tract_onnx::pb::AttributeProto;

    fn encoder(version: i64, attrs: Vec<AttributeProto>) -> TractResult<LabelEncoder> {
        let onnx = tract_onnx::onnx();
        let load = |t: &TensorProto| tract_onnx::tensor::load_tensor(&*onnx.provider, t, None);
        LabelEncoder::from_node(&node("LabelEncoder", attrs), version, load)
    }

    fn strs(v: &[&str]) -> Tensor {
        tensor1(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn proto<T>(dt: DataType, v: &[T], fill: impl Fn(&mut TensorProto, &[T])) -> TensorProto {
        let mut t = TensorProto {
            data_type: dt as i32,
            dims: vec![v.len() as i64],
            ..TensorProto::default()
        };
        fill(&mut t, v);
        t
    }

    #[test]
    fn version_2_maps_keys_to_values_and_misses_to_the_default() {
        let e = encoder(
            2,
            vec![
                strings("keys_strings", &["a", "b"]),
                ints("values_int64s", &[10, 20]),
            ],
        )
        .unwrap();
        assert_eq!(
            run(&e, strs(&["b", "z", "a"])).unwrap(),
            tensor1(&[20i64, -1, 10])
        );
        let e = encoder(
            2,
            vec![
                ints("keys_int64s", &[1]),
                strings("values_strings", &["one"]),
            ],
        )
        .unwrap();
        let y = run(&e, tensor2(&[[1i64], [2]])).unwrap();
        assert_eq!(y, tensor2(&[["one".to_string()], ["_Unused".to_string()]]));
        let e = encoder(
            3,
            vec![
                strings("keys_strings", &["a"]),
                floats("values_floats", &[1.5]),
            ],
        )
        .unwrap();
        let y = run(&e, strs(&["a", "b"])).unwrap();
        assert_eq!(f32s(&y)[1].to_bits(), (-0f32).to_bits());
    }

    #[test]
    fn defaults_can_be_set() {
        let attrs = vec![
            floats("keys_floats", &[0.5]),
            strings("values_strings", &["half"]),
            string("default_string", "?"),
        ];
        assert_eq!(
            run(&encoder(2, attrs).unwrap(), tensor1(&[0.5f32, 1.0])).unwrap(),
            strs(&["half", "?"])
        );
        let attrs = vec![
            ints("keys_int64s", &[1]),
            floats("values_floats", &[2.0]),
            float("default_float", 7.0),
        ];
        assert_eq!(
            run(&encoder(2, attrs).unwrap(), tensor1(&[3i64])).unwrap(),
            tensor1(&[7f32])
        );
        let attrs = vec![
            strings("keys_strings", &["a"]),
            ints("values_int64s", &[2]),
            int("default_int64", 9),
        ];
        assert_eq!(
            run(&encoder(2, attrs).unwrap(), strs(&["b"])).unwrap(),
            tensor1(&[9i64])
        );
    }

    #[test]
    fn a_key_listed_twice_maps_to_its_first_value() {
        let attrs = || {
            vec![
                strings("keys_strings", &["a", "a"]),
                ints("values_int64s", &[1, 2]),
            ]
        };
        assert_eq!(
            run(&encoder(2, attrs()).unwrap(), strs(&["a"])).unwrap(),
            tensor1(&[1i64])
        );
        assert_eq!(
            run(&encoder(4, attrs()).unwrap(), strs(&["a"])).unwrap(),
            tensor1(&[1i64])
        );
    }

    #[test]
    fn float_keys_match_as_equality_and_nan_from_version_4() {
        let attrs = || {
            vec![
                floats("keys_floats", &[f32::NAN, 0.0]),
                ints("values_int64s", &[7, 8]),
            ]
        };
        let x = tensor1(&[f32::NAN, -0.0, 0.0, 1.0]);
        assert_eq!(
            run(&encoder(2, attrs()).unwrap(), x.clone()).unwrap(),
            tensor1(&[-1i64, 8, 8, -1])
        );
        assert_eq!(
            run(&encoder(4, attrs()).unwrap(), x).unwrap(),
            tensor1(&[7i64, 8, 8, -1])
        );
    }

    #[test]
    fn version_1_maps_strings_to_positions_and_back() {
        let e = encoder(1, vec![strings("classes_strings", &["a", "b", "a"])]).unwrap();
        assert_eq!(
            run(&e, strs(&["a", "b", "zz"])).unwrap(),
            tensor1(&[2i64, 1, -1])
        );
        assert_eq!(
            run(&e, tensor1(&[0i64, 2, 5, -1])).unwrap(),
            strs(&["a", "a", "_Unused", "_Unused"])
        );
        let e = encoder(
            1,
            vec![strings("classes_strings", &["a"]), int("default_int64", -9)],
        )
        .unwrap();
        assert_eq!(run(&e, strs(&["q"])).unwrap(), tensor1(&[-9i64]));
        assert!(
            encoder(1, vec![])
                .unwrap_err()
                .to_string()
                .contains("classes_strings")
        );
    }

    #[test]
    fn version_4_reads_tensor_attributes() {
        let keys = proto(DataType::Double, &[0.5f64, 1.5], |t, v| {
            t.double_data = v.to_vec()
        });
        let values = proto(DataType::String, &["a", "b"], |t, v| {
            t.string_data = v.iter().map(|s| s.as_bytes().to_vec()).collect()
        });
        let e = encoder(
            4,
            vec![tensor("keys_tensor", keys), tensor("values_tensor", values)],
        )
        .unwrap();
        assert_eq!(
            run(&e, tensor1(&[1.5f64, 2.0])).unwrap(),
            strs(&["b", "_Unused"])
        );

        let values = proto(DataType::Int64, &[1i64, 2], |t, v| {
            t.int64_data = v.to_vec()
        });
        let default = proto(DataType::Int64, &[-5i64], |t, v| t.int64_data = v.to_vec());
        let attrs = vec![
            strings("keys_strings", &["a", "b"]),
            tensor("values_tensor", values),
            tensor("default_tensor", default),
            int("default_int64", 9),
        ];
        assert_eq!(
            run(&encoder(4, attrs).unwrap(), strs(&["b", "c"])).unwrap(),
            tensor1(&[2i64, -5])
        );
    }

    #[test]
    fn a_double_table_ignores_default_float() {
        let values = proto(DataType::Double, &[1.5f64], |t, v| {
            t.double_data = v.to_vec()
        });
        let attrs = vec![
            strings("keys_strings", &["a"]),
            tensor("values_tensor", values),
            float("default_float", 3.5),
        ];
        let y = run(&encoder(4, attrs).unwrap(), strs(&["b"])).unwrap();
        assert_eq!(
            y.try_as_plain_ram().unwrap().as_slice::<f64>().unwrap()[0].to_bits(),
            (-0f64).to_bits()
        );
    }

    #[test]
    fn inconsistent_attributes_are_refused_at_load() {
        let refused = |version, attrs: Vec<AttributeProto>, what: &str| {
            let e = encoder(version, attrs).unwrap_err().to_string();
            assert!(e.contains(what), "{what}: {e}");
        };
        refused(2, vec![ints("values_int64s", &[1])], "keys_*");
        refused(2, vec![strings("keys_strings", &["a"])], "values_*");
        let two_keys = vec![
            strings("keys_strings", &["a"]),
            ints("keys_int64s", &[1]),
            ints("values_int64s", &[1]),
        ];
        refused(2, two_keys, "keys_strings, keys_int64s");
        refused(
            2,
            vec![
                strings("keys_strings", &["a", "b"]),
                ints("values_int64s", &[1]),
            ],
            "as many values",
        );
        let values = proto(DataType::Double, &[1.5f64], |t, v| {
            t.double_data = v.to_vec()
        });
        refused(
            4,
            vec![
                floats("keys_floats", &[1.0]),
                tensor("values_tensor", values),
            ],
            "F32 to F64",
        );
        let default = proto(DataType::Float, &[1f32], |t, v| t.float_data = v.to_vec());
        let attrs = vec![
            strings("keys_strings", &["a"]),
            ints("values_int64s", &[1]),
            tensor("default_tensor", default),
        ];
        refused(4, attrs, "default_tensor");
        let keys = proto(DataType::Bool, &[1i32], |t, v| t.int32_data = v.to_vec());
        refused(
            4,
            vec![tensor("keys_tensor", keys), ints("values_int64s", &[1])],
            "keys_tensor",
        );
    }

    #[test]
    fn types_as_its_values_and_takes_its_keys_type() {
        let e = || {
            encoder(
                2,
                vec![
                    strings("keys_strings", &["a"]),
                    floats("values_floats", &[1.0]),
                ],
            )
            .unwrap()
        };
        let facts = typed_outputs(e(), &[(DatumType::String, &[None, Some(1)])]).unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(1)])]);
        let e2 = e();
        let err = typed_outputs(e2, &[(DatumType::I64, &[None])]).unwrap_err();
        assert!(format!("{err:?}").contains("takes String input"), "{err:?}");
        let v1 = || encoder(1, vec![strings("classes_strings", &["a"])]).unwrap();
        assert_eq!(
            typed_outputs(v1(), &[(DatumType::I64, &[None])]).unwrap(),
            [(DatumType::String, vec![None])]
        );
        assert_eq!(
            typed_outputs(v1(), &[(DatumType::String, &[None])]).unwrap(),
            [(DatumType::I64, vec![None])]
        );
    }
}
