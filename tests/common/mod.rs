//! Helpers shared by the integration tests: the MiniLM fixture reader and a plain
//! float64 reference that does not use any code from the crate.

#![allow(dead_code)]

pub mod reference;

use qkv::Matrix;
use safetensors::{Dtype, SafeTensors};

/// Path of the MiniLM fixture, relative to the crate root.
pub const MINILM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm/minilm-attention.safetensors");

/// Number of heads and head width of the MiniLM model.
pub const MINILM_HEADS: usize = 12;
pub const MINILM_HEAD_DIM: usize = 32;

/// The MiniLM fixture file, read into memory.
pub struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    pub fn load() -> Self {
        let bytes = std::fs::read(MINILM).unwrap_or_else(|e| panic!("cannot read {MINILM}: {e}"));
        Self { bytes }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("fixture is valid safetensors")
    }

    /// Returns the tokens of sentence `s` from the header metadata.
    pub fn tokens(&self, sentence: usize) -> Vec<String> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).expect("fixture header");
        let meta = meta.metadata().as_ref().expect("fixture metadata");
        let json = &meta[&format!("s{sentence}.tokens")];
        parse_string_list(json)
    }

    /// Returns a tensor's shape and its elements as f64, whatever its stored type.
    pub fn tensor(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let tensors = self.tensors();
        let view = tensors.tensor(name).unwrap_or_else(|e| panic!("tensor {name}: {e}"));
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
            Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
            Dtype::I64 => data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
            other => panic!("tensor {name} has unexpected dtype {other:?}"),
        };
        (view.shape().to_vec(), values)
    }

    /// Returns a 2-D tensor as a matrix of `T`.
    pub fn matrix<T: qkv::Scalar>(&self, name: &str) -> Matrix<T> {
        let (shape, values) = self.tensor(name);
        assert_eq!(shape.len(), 2, "tensor {name} has shape {shape:?}");
        Matrix::from_vec(shape[0], shape[1], values.into_iter().map(|x| T::from(x).unwrap()).collect()).unwrap()
    }

    /// Returns a 1-D tensor as a vector of `T`.
    pub fn vector<T: qkv::Scalar>(&self, name: &str) -> Vec<T> {
        let (shape, values) = self.tensor(name);
        assert_eq!(shape.len(), 1, "tensor {name} has shape {shape:?}");
        values.into_iter().map(|x| T::from(x).unwrap()).collect()
    }
}

/// Parses a JSON list of strings such as `["[CLS]", "the", "'"]`.
fn parse_string_list(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut token = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => token.push(chars.next().expect("escape in fixture tokens")),
                _ => token.push(c),
            }
        }
        out.push(token);
    }
    out
}

/// Returns the largest absolute difference between `actual` and `expected`.
pub fn max_abs_diff<T: qkv::Scalar>(actual: &Matrix<T>, expected: &[f64]) -> f64 {
    assert_eq!(actual.as_slice().len(), expected.len(), "element counts differ");
    actual.as_slice().iter().zip(expected).map(|(a, e)| (a.to_f64().unwrap() - e).abs()).fold(0.0, f64::max)
}
