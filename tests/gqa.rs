//! Grouped-query and multi-query attention: equal to multi-head attention with each
//! key/value head repeated, close to the float64 reference, and shape errors.

mod common;
mod decode_support;

use common::reference::Mat;
use decode_support::{LayerWeights, MaskCase, Rng, assert_close, to_matrix};
use proptest::prelude::*;
use qkv::{Error, Matrix, MultiHeadAttention, Projection, Scalar};

/// Returns `w` with the column block of each key/value head repeated for every query
/// head that reads it, in query-head order.
fn repeat_heads(w: &Mat, n_heads: usize, n_kv_heads: usize, d: usize) -> Mat {
    let group = n_heads / n_kv_heads;
    let mut data = Vec::with_capacity(w.rows * n_heads * d);
    for i in 0..w.rows {
        for h in 0..n_heads {
            let g = h / group;
            data.extend_from_slice(&w.row(i)[g * d..(g + 1) * d]);
        }
    }
    Mat::new(w.rows, n_heads * d, data)
}

fn repeat_bias(b: &[f64], n_heads: usize, n_kv_heads: usize, d: usize) -> Vec<f64> {
    repeat_heads(&Mat::new(1, b.len(), b.to_vec()), n_heads, n_kv_heads, d).data
}

fn projection<T: Scalar>(w: &Mat, b: &[f64]) -> Projection<T> {
    Projection::new(to_matrix(w), Some(b.iter().map(|&x| T::from(x).unwrap()).collect())).unwrap()
}

/// Builds the multi-head layer whose key and value heads are the grouped layer's,
/// repeated.
fn repeated_layer<T: Scalar>(weights: &LayerWeights) -> MultiHeadAttention<T> {
    let (h, g) = (weights.n_heads, weights.n_kv_heads);
    let key =
        projection(&repeat_heads(&weights.w_k, h, g, weights.d_head), &repeat_bias(&weights.b_k, h, g, weights.d_head));
    let value = projection(
        &repeat_heads(&weights.w_v, h, g, weights.d_head_v),
        &repeat_bias(&weights.b_v, h, g, weights.d_head_v),
    );
    let layer = MultiHeadAttention::new(projection(&weights.w_q, &weights.b_q), key, value, h).unwrap();
    match &weights.output {
        Some((w, b)) => layer.with_output(projection(w, b)).unwrap(),
        None => layer,
    }
}

fn check_grouped<T: Scalar>(
    (n_kv_heads, group, d_head, d_head_v, n, output, seed): (usize, usize, usize, usize, usize, bool, u64),
    tol: f64,
) {
    let mut rng = Rng::new(seed);
    let d_model = 5;
    let layout = (n_kv_heads * group, n_kv_heads);
    let weights = LayerWeights::random(&mut rng, layout, d_model, d_model, d_head, d_head_v, output.then_some(3));
    let grouped: MultiHeadAttention<T> = weights.self_attention();
    let repeated: MultiHeadAttention<T> = repeated_layer(&weights);
    let x_ref = rng.mat(n, d_model);
    let x: Matrix<T> = to_matrix(&x_ref);
    let mask = MaskCase::random(&mut rng, n, n);
    let context = format!("layout {layout:?}, d_head {d_head}, d_head_v {d_head_v}, n {n}, mask {mask:?}");

    let (out, weights_grouped) = grouped.forward_masked_with_weights(&x, &mask.mask()).unwrap();
    let (out_repeated, weights_repeated) = repeated.forward_masked_with_weights(&x, &mask.mask()).unwrap();
    assert_eq!(out, out_repeated, "{context}: outputs differ");
    assert_eq!(weights_grouped.len(), layout.0, "{context}: one weight matrix per query head");
    assert_eq!(weights_grouped, weights_repeated, "{context}: weights differ");

    let expected = weights.reference(&x_ref, &x_ref, |i, j| mask.allows(i, j, n, n));
    assert_close(&out, &expected, tol, &context);
}

fn grouped_case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, bool, u64)> {
    (1..4_usize, 1..4_usize, 1..6_usize, 1..6_usize, 0..12_usize, any::<bool>(), any::<u64>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn grouped_equals_repeated_heads_f64(case in grouped_case()) {
        check_grouped::<f64>(case, 1e-12);
    }

    #[test]
    fn grouped_equals_repeated_heads_f32(case in grouped_case()) {
        check_grouped::<f32>(case, 2e-5);
    }
}

fn p(d_in: usize, d_out: usize) -> Projection<f32> {
    Projection::new(Matrix::zeros(d_in, d_out).unwrap(), None).unwrap()
}

#[test]
fn kv_heads_must_divide_heads() {
    let err = MultiHeadAttention::grouped(p(8, 12), p(8, 8), p(8, 8), 6, 4).unwrap_err();
    assert_eq!(err, Error::KvHeadsDivide { n_heads: 6, n_kv_heads: 4 });
    assert_eq!(err.to_string(), "4 key/value heads do not divide 6 query heads");
}

#[test]
fn zero_kv_heads_is_rejected() {
    assert_eq!(MultiHeadAttention::grouped(p(8, 8), p(8, 8), p(8, 8), 4, 0).unwrap_err(), Error::ZeroHeads);
}

#[test]
fn key_width_must_split_into_kv_heads() {
    let err = MultiHeadAttention::grouped(p(8, 8), p(8, 5), p(8, 4), 4, 2).unwrap_err();
    assert_eq!(err, Error::HeadsDivide { what: "key", width: 5, heads: 2 });
    let err = MultiHeadAttention::grouped(p(8, 8), p(8, 4), p(8, 5), 4, 2).unwrap_err();
    assert_eq!(err, Error::HeadsDivide { what: "value", width: 5, heads: 2 });
}

#[test]
fn head_widths_must_agree() {
    // Query heads of width 2, key/value heads of width 3.
    let err = MultiHeadAttention::grouped(p(8, 8), p(8, 6), p(8, 6), 4, 2).unwrap_err();
    assert_eq!(err, Error::QueryKeyWidth { query: 2, key: 3 });
}

#[test]
fn output_takes_concatenated_heads() {
    // 4 query heads with value heads of width 3 concatenate to width 12, although the
    // value projection is only 6 wide.
    let gqa = MultiHeadAttention::grouped(p(8, 8), p(8, 4), p(8, 6), 4, 2).unwrap();
    assert_eq!((gqa.d_head_v(), gqa.d_out(), gqa.value_width()), (3, 12, 6));
    let err = gqa.clone().with_output(p(6, 8)).unwrap_err();
    assert_eq!(err, Error::OutputInput { expected: 12, found: 6 });
    let with_output = gqa.with_output(p(12, 8)).unwrap();
    assert_eq!(with_output.forward(&Matrix::zeros(3, 8).unwrap()).unwrap().shape(), (3, 8));
}

#[test]
fn multi_query_shares_one_head() {
    let mqa = MultiHeadAttention::grouped(p(8, 8), p(8, 2), p(8, 2), 4, 1).unwrap();
    assert_eq!((mqa.n_heads(), mqa.n_kv_heads(), mqa.key_width()), (4, 1, 2));
}
