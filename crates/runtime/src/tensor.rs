//! The runtime's own tensors: what the protocols' decoders produce and what every engine
//! takes, so that no engine's types cross the runtime's API.
//!
//! A [`Tensor`] is a shape and one typed `Vec` of its elements, row-major. The decoders fill
//! the `Vec` as they parse and hand it over without a copy; an engine copies it into its
//! own layout once (tract wants aligned storage), as it did when the decoders built tract's
//! tensors. Outputs are read where the engine left them, through [`TensorView`]s (see
//! `engine::OutputSet`), so answering copies nothing either.

/// The FP16 element type (the `half` crate's), for engines that name it.
pub use half::f16;
use smallvec::SmallVec;

use crate::datatype::DataType;

/// A tensor's dimensions: inline up to four (no allocation for the usual shapes).
pub type Shape = SmallVec<[usize; 4]>;

/// Runs `$body` with `$v` bound to the payload of each variant of `$e` (an `Elements`, a
/// `Slice`), the same code for every element type.
macro_rules! each_type {
    ($enum:ident, $e:expr, $v:ident => $body:expr) => {
        match $e {
            $enum::Bool($v) => $body,
            $enum::U8($v) => $body,
            $enum::U16($v) => $body,
            $enum::U32($v) => $body,
            $enum::U64($v) => $body,
            $enum::I8($v) => $body,
            $enum::I16($v) => $body,
            $enum::I32($v) => $body,
            $enum::I64($v) => $body,
            $enum::F16($v) => $body,
            $enum::F32($v) => $body,
            $enum::F64($v) => $body,
            $enum::Bytes($v) => $body,
        }
    };
}
pub(crate) use each_type;

/// Matches an [`Elements`]: `$number` with `$v` bound to the `Vec` of any variant but
/// strings (booleans, integers, floats), `$strings` with `$s` bound to its `Vec<String>`. An
/// engine's conversion into its own tensors, the same code for every plain type.
#[macro_export]
macro_rules! match_elements {
    ($e:expr, $v:ident => $number:expr, $s:ident => $strings:expr) => {{
        use $crate::tensor::Elements as E;
        match $e {
            E::Bool($v) => $number,
            E::U8($v) => $number,
            E::U16($v) => $number,
            E::U32($v) => $number,
            E::U64($v) => $number,
            E::I8($v) => $number,
            E::I16($v) => $number,
            E::I32($v) => $number,
            E::I64($v) => $number,
            E::F16($v) => $number,
            E::F32($v) => $number,
            E::F64($v) => $number,
            E::Bytes($s) => $strings,
        }
    }};
}

/// The [`Slice`] of elements of type `$dt` (a [`DataType`]): `$read!(T)` gives the `&[T]`
/// of a plain type; strings are `$strings`. An engine's view of its outputs, the same code
/// for every plain type.
#[macro_export]
macro_rules! slice_of_type {
    ($dt:expr, $read:ident, $strings:expr) => {{
        use $crate::datatype::DataType as D;
        use $crate::tensor::Slice as S;
        match $dt {
            D::Bool => S::Bool($read!(bool)),
            D::U8 => S::U8($read!(u8)),
            D::U16 => S::U16($read!(u16)),
            D::U32 => S::U32($read!(u32)),
            D::U64 => S::U64($read!(u64)),
            D::I8 => S::I8($read!(i8)),
            D::I16 => S::I16($read!(i16)),
            D::I32 => S::I32($read!(i32)),
            D::I64 => S::I64($read!(i64)),
            D::F16 => S::F16($read!($crate::tensor::f16)),
            D::F32 => S::F32($read!(f32)),
            D::F64 => S::F64($read!(f64)),
            D::Bytes => $strings,
        }
    }};
}

/// Declares the owned and the borrowed form of the elements, one variant per [`DataType`].
macro_rules! element_types {
    ($($variant:ident: $t:ty),*) => {
        /// A tensor's elements, row-major, of one type.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Elements {
            $(
                #[doc = concat!("`", stringify!($t), "` elements.")]
                $variant(Vec<$t>),
            )*
        }

        /// A tensor's elements, borrowed, of one type.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Slice<'a> {
            $(
                #[doc = concat!("`", stringify!($t), "` elements.")]
                $variant(&'a [$t]),
            )*
        }

        impl Elements {
            /// Their protocol type.
            pub fn datatype(&self) -> DataType {
                match self {
                    $(Elements::$variant(_) => DataType::$variant,)*
                }
            }

            /// Borrowed.
            pub fn as_slice(&self) -> Slice<'_> {
                match self {
                    $(Elements::$variant(v) => Slice::$variant(v),)*
                }
            }

            /// No elements of this type.
            pub fn empty(datatype: DataType) -> Elements {
                match datatype {
                    $(DataType::$variant => Elements::$variant(Vec::new()),)*
                }
            }

            /// `n` zeros (false, empty strings) of this type.
            pub fn zeros(datatype: DataType, n: usize) -> Elements {
                match datatype {
                    $(DataType::$variant => Elements::$variant(vec![<$t>::default(); n]),)*
                }
            }

            /// Appends `more`, of the same type; false (and nothing appended) otherwise.
            fn extend_from(&mut self, more: Slice<'_>) -> bool {
                match (self, more) {
                    $((Elements::$variant(v), Slice::$variant(m)) => {
                        v.extend_from_slice(m);
                        true
                    })*
                    _ => false,
                }
            }
        }

        impl<'a> Slice<'a> {
            /// Their protocol type.
            pub fn datatype(&self) -> DataType {
                match self {
                    $(Slice::$variant(_) => DataType::$variant,)*
                }
            }

            /// Elements `range`, borrowed.
            pub fn range(&self, range: std::ops::Range<usize>) -> Slice<'a> {
                match self {
                    $(Slice::$variant(v) => Slice::$variant(&v[range]),)*
                }
            }

            /// An owned copy of elements `range`.
            pub fn to_elements(&self, range: std::ops::Range<usize>) -> Elements {
                match self {
                    $(Slice::$variant(v) => Elements::$variant(v[range].to_vec()),)*
                }
            }
        }

        $(
            impl Element for $t {
                const DATATYPE: DataType = DataType::$variant;

                fn slice<'a>(s: Slice<'a>) -> Option<&'a [$t]> {
                    match s {
                        Slice::$variant(v) => Some(v),
                        _ => None,
                    }
                }
            }

            impl From<Vec<$t>> for Elements {
                fn from(v: Vec<$t>) -> Elements {
                    Elements::$variant(v)
                }
            }
        )*
    };
}

element_types!(
    Bool: bool,
    U8: u8,
    U16: u16,
    U32: u32,
    U64: u64,
    I8: i8,
    I16: i16,
    I32: i32,
    I64: i64,
    F16: f16,
    F32: f32,
    F64: f64,
    Bytes: String
);

/// A Rust type that is the element type of one [`DataType`].
pub trait Element: Sized + Clone + Default + Send + Sync + 'static {
    /// Its protocol type.
    const DATATYPE: DataType;
    /// The elements, when they are of this type.
    fn slice(s: Slice<'_>) -> Option<&[Self]>;
}

impl Elements {
    /// How many elements.
    pub fn len(&self) -> usize {
        each_type!(Elements, self, v => v.len())
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Slice<'_> {
    /// How many elements.
    pub fn len(&self) -> usize {
        each_type!(Slice, self, v => v.len())
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor: a shape and its elements, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Shape,
    elements: Elements,
}

impl Tensor {
    /// A tensor of this shape holding `elements`; an error when their count is not the
    /// shape's.
    pub fn new(shape: &[usize], elements: impl Into<Elements>) -> Result<Tensor, String> {
        let elements = elements.into();
        let want: usize = shape.iter().product();
        if elements.len() != want {
            return Err(format!(
                "shape {shape:?} holds {want} elements, not {}",
                elements.len()
            ));
        }
        Ok(Tensor {
            shape: shape.into(),
            elements,
        })
    }

    /// A tensor of this shape and type filled with zeros (false, empty strings).
    pub fn zeros(datatype: DataType, shape: &[usize]) -> Tensor {
        Tensor {
            shape: shape.into(),
            elements: Elements::zeros(datatype, shape.iter().product()),
        }
    }

    /// Its dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Its element type.
    pub fn datatype(&self) -> DataType {
        self.elements.datatype()
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True when it has no element.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Its elements.
    pub fn elements(&self) -> &Elements {
        &self.elements
    }

    /// Its elements as `T`, when they are.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::slice(self.elements.as_slice())
    }

    /// Shape and elements, for an engine that takes them over.
    pub fn into_parts(self) -> (Shape, Elements) {
        (self.shape, self.elements)
    }

    /// Borrowed.
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            shape: &self.shape,
            elements: self.elements.as_slice(),
        }
    }

    /// The parts concatenated along the first dimension; they must share the type and
    /// the dimensions after the first.
    pub fn concat(parts: &[TensorView<'_>]) -> Result<Tensor, String> {
        let Some(first) = parts.first() else {
            return Err("nothing to concatenate".into());
        };
        if first.shape.is_empty() {
            return Err("a scalar has no rows to concatenate".into());
        }
        let total: usize = parts.iter().map(|p| p.elements.len()).sum();
        let mut elements = Elements::empty(first.elements.datatype());
        each_type!(Elements, &mut elements, v => v.reserve(total));
        let mut rows = 0;
        for p in parts {
            if p.shape.len() != first.shape.len() || p.shape[1..] != first.shape[1..] {
                return Err(format!(
                    "shapes {:?} and {:?} differ after the first dimension",
                    first.shape, p.shape
                ));
            }
            if !elements.extend_from(p.elements) {
                return Err(format!(
                    "types {} and {} differ",
                    first.elements.datatype(),
                    p.elements.datatype()
                ));
            }
            rows += p.shape[0];
        }
        let mut shape: Shape = first.shape.into();
        shape[0] = rows;
        Ok(Tensor { shape, elements })
    }
}

/// A tensor borrowed: from a [`Tensor`], or from an engine's output as it left it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorView<'a> {
    /// Its dimensions.
    pub shape: &'a [usize],
    /// Its elements, row-major.
    pub elements: Slice<'a>,
}

impl<'a> TensorView<'a> {
    /// Its element type.
    pub fn datatype(&self) -> DataType {
        self.elements.datatype()
    }

    /// An owned copy.
    pub fn to_tensor(&self) -> Tensor {
        Tensor {
            shape: self.shape.into(),
            elements: self.elements.to_elements(0..self.elements.len()),
        }
    }

    /// An owned copy of rows `from..to` of the first dimension.
    pub fn rows(&self, from: usize, to: usize) -> Tensor {
        let row: usize = self.shape.iter().skip(1).product();
        let mut shape: Shape = self.shape.into();
        if let Some(n) = shape.first_mut() {
            *n = to - from;
        }
        Tensor {
            shape,
            elements: self.elements.to_elements(from * row..to * row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_holds_as_many_elements_as_its_shape() {
        let t = Tensor::new(&[2, 2], vec![1f32, 2., 3., 4.]).unwrap();
        assert_eq!(t.datatype(), DataType::F32);
        assert_eq!(t.as_slice::<f32>(), Some(&[1f32, 2., 3., 4.][..]));
        assert_eq!(t.as_slice::<i64>(), None);
        let e = Tensor::new(&[2, 3], vec![1f32]).unwrap_err();
        assert_eq!(e, "shape [2, 3] holds 6 elements, not 1");
    }

    #[test]
    fn concatenation_joins_rows_and_refuses_what_does_not_stack() {
        let a = Tensor::new(&[1, 2], vec![1i64, 2]).unwrap();
        let b = Tensor::new(&[2, 2], vec![3i64, 4, 5, 6]).unwrap();
        let both = Tensor::concat(&[a.view(), b.view()]).unwrap();
        assert_eq!(both.shape(), &[3, 2]);
        assert_eq!(both.as_slice::<i64>(), Some(&[1i64, 2, 3, 4, 5, 6][..]));
        assert_eq!(both.view().rows(1, 3), b);

        let wide = Tensor::new(&[1, 3], vec![1i64, 2, 3]).unwrap();
        let e = Tensor::concat(&[a.view(), wide.view()]).unwrap_err();
        assert_eq!(
            e,
            "shapes [1, 2] and [1, 3] differ after the first dimension"
        );
        let floats = Tensor::new(&[1, 2], vec![1f32, 2.]).unwrap();
        let e = Tensor::concat(&[a.view(), floats.view()]).unwrap_err();
        assert_eq!(e, "types INT64 and FP32 differ");
    }

    #[test]
    fn strings_and_zeros_are_tensors_too() {
        let s = Tensor::new(&[2], vec!["a".to_string(), "b".into()]).unwrap();
        assert_eq!(s.datatype(), DataType::Bytes);
        let z = Tensor::zeros(DataType::Bool, &[0, 3]);
        assert!(z.is_empty());
        assert_eq!(z.shape(), &[0, 3]);
    }
}
