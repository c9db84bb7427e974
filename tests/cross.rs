//! Cross-attention, with queries from one sequence over keys and values of another
//! under key-validity masks, against the float64 reference. Also its shape errors.

mod common;
mod decode_support;

use decode_support::{LAYOUTS, LayerWeights, Rng, assert_close, to_matrix};
use proptest::prelude::*;
use qkv::{Error, Mask, Matrix, MultiHeadAttention, Projection, Scalar};

#[derive(Debug, Clone)]
struct Case {
    layout: (usize, usize),
    d_model: usize,
    d_memory: usize,
    d_head: usize,
    d_head_v: usize,
    n: usize,
    m: usize,
    output: bool,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..LAYOUTS.len(),
        1..7_usize,
        1..9_usize,
        1..5_usize,
        1..5_usize,
        0..10_usize,
        0..14_usize,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(layout, d_model, d_memory, d_head, d_head_v, n, m, output, seed)| Case {
            layout: LAYOUTS[layout],
            d_model,
            d_memory,
            d_head,
            d_head_v,
            n,
            m,
            output,
            seed,
        })
}

fn check_cross<T: Scalar>(case: &Case, tol: f64) {
    let mut rng = Rng::new(case.seed);
    let d_out = case.output.then_some(4);
    let weights =
        LayerWeights::random(&mut rng, case.layout, case.d_model, case.d_memory, case.d_head, case.d_head_v, d_out);
    let layer: MultiHeadAttention<T> = weights.cross_attention();
    let (x_ref, memory_ref) = (rng.mat(case.n, case.d_model), rng.mat(case.m, case.d_memory));
    let (x, memory): (Matrix<T>, Matrix<T>) = (to_matrix(&x_ref), to_matrix(&memory_ref));
    let valid: Vec<bool> = (0..case.m).map(|_| rng.below(3) != 0).collect();
    let mask = Mask::ValidKeys(valid.clone());

    let out = layer.forward_cross(&x, &memory, &mask).unwrap();
    let expected = weights.reference(&x_ref, &memory_ref, |_, j| valid[j]);
    assert_close(&out, &expected, tol, &format!("{case:?}, valid keys {valid:?}"));

    let (keys, values) = layer.project_memory(&memory).unwrap();
    assert_eq!((keys.rows(), keys.cols()), (case.m, layer.key_width()));
    let from_projected = layer.forward_cross_kv(&x, &keys, &values, &mask).unwrap();
    assert_eq!(from_projected, out, "{case:?}: projecting the memory first changes the result");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cross_matches_reference_f64(case in case()) {
        check_cross::<f64>(&case, 1e-12);
    }

    #[test]
    fn cross_matches_reference_f32(case in case()) {
        check_cross::<f32>(&case, 2e-5);
    }
}

/// Builds a cross layer with 2 query heads of width 2 over 1 key/value head, decoder width 4
/// and memory width 6.
fn layer() -> MultiHeadAttention<f64> {
    let mut rng = Rng::new(3);
    LayerWeights::random(&mut rng, (2, 1), 4, 6, 2, 3, None).cross_attention()
}

#[test]
fn padding_in_memory_does_not_leak() {
    let layer = layer();
    let x = Matrix::from_fn(3, 4, |i, j| (i as f64 - j as f64) / 3.0).unwrap();
    let memory = Matrix::from_fn(4, 6, |i, j| ((i * 6 + j) as f64).cos()).unwrap();
    let mut padded = memory.clone();
    padded.row_mut(3).unwrap().fill(f64::NAN);

    let mask = Mask::from_key_padding(&[false, false, false, true]);
    let clean = layer.forward_cross(&x, &memory, &mask).unwrap();
    let with_nan = layer.forward_cross(&x, &padded, &mask).unwrap();
    assert_eq!(with_nan, clean);
}

#[test]
fn all_padding_gives_zero_rows() {
    let layer = layer();
    let x = Matrix::from_fn(2, 4, |i, j| (i + j) as f64).unwrap();
    let memory = Matrix::from_fn(3, 6, |i, j| (i * j) as f64).unwrap();
    let out = layer.forward_cross(&x, &memory, &Mask::ValidKeys(vec![false; 3])).unwrap();
    assert!(out.as_slice().iter().all(|&y| y == 0.0), "output {out:?}");
}

#[test]
fn empty_memory_gives_zero_rows() {
    let layer = layer();
    let out = layer.forward_cross(&Matrix::zeros(2, 4).unwrap(), &Matrix::zeros(0, 6).unwrap(), &Mask::None).unwrap();
    assert_eq!(out, Matrix::zeros(2, 6).unwrap());
}

#[test]
fn key_and_value_lengths_must_match() {
    let layer = layer();
    let x = Matrix::zeros(2, 4).unwrap();
    let err = layer.forward_cross_kv(&x, &Matrix::zeros(5, 2).unwrap(), &Matrix::zeros(3, 3).unwrap(), &Mask::None);
    assert_eq!(err.unwrap_err(), Error::KeyValueRows { keys: 5, values: 3 });
}

#[test]
fn projected_widths_must_match() {
    let layer = layer();
    let x = Matrix::zeros(2, 4).unwrap();
    let err = layer.forward_cross_kv(&x, &Matrix::zeros(5, 3).unwrap(), &Matrix::zeros(5, 3).unwrap(), &Mask::None);
    assert_eq!(err.unwrap_err(), Error::KvWidth { what: "key", expected: 2, found: 3 });
    let err = layer.forward_cross_kv(&x, &Matrix::zeros(5, 2).unwrap(), &Matrix::zeros(5, 2).unwrap(), &Mask::None);
    let err = err.unwrap_err();
    assert_eq!(err, Error::KvWidth { what: "value", expected: 3, found: 2 });
    assert_eq!(err.to_string(), "value width 2 does not match the layer's value width 3");
}

#[test]
fn mask_must_fit_queries_and_memory() {
    let layer = layer();
    let (x, memory) = (Matrix::zeros(2, 4).unwrap(), Matrix::zeros(5, 6).unwrap());
    let err = layer.forward_cross(&x, &memory, &Mask::ValidKeys(vec![true; 2])).unwrap_err();
    assert_eq!(err, Error::KeyMaskLength { expected: 5, found: 2 });
    let allowed = Mask::allowed_from_fn(5, 2, |_, _| true).unwrap();
    let err = layer.forward_cross(&x, &memory, &allowed).unwrap_err();
    assert_eq!(err, Error::MaskShape { expected: (2, 5), found: (5, 2) });
}

#[test]
fn input_widths_are_checked() {
    let layer = layer();
    let err = layer.forward_cross(&Matrix::zeros(2, 6).unwrap(), &Matrix::zeros(5, 6).unwrap(), &Mask::None);
    assert_eq!(err.unwrap_err(), Error::InputWidth { expected: 4, found: 6 });
    let err = layer.forward_cross(&Matrix::zeros(2, 4).unwrap(), &Matrix::zeros(5, 4).unwrap(), &Mask::None);
    assert_eq!(err.unwrap_err(), Error::InputWidth { expected: 6, found: 4 });
}

#[test]
fn key_and_value_inputs_must_match() {
    let p = |d_in, d_out| Projection::new(Matrix::<f32>::zeros(d_in, d_out).unwrap(), None).unwrap();
    let err = MultiHeadAttention::cross(p(4, 4), p(6, 4), p(5, 4), 2, 2).unwrap_err();
    assert_eq!(err, Error::KeyValueInputs { key: 6, value: 5 });
    assert_eq!(err.to_string(), "key projection input width 6 does not match value projection input width 5");
}
