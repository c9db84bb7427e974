//! Bad shapes and settings return an `Error` that names the values involved; nothing
//! panics.

use qkv::{
    Error, Mask, Matrix, MatrixView, MultiHeadAttention, Projection, SelfAttention, scaled_dot_product_attention,
};

fn zeros(rows: usize, cols: usize) -> Matrix<f64> {
    Matrix::zeros(rows, cols).unwrap()
}

fn projection(d_in: usize, d_out: usize) -> Projection<f64> {
    Projection::new(zeros(d_in, d_out), None).unwrap()
}

#[test]
fn matrix_data_length_mismatch() {
    let err = Matrix::from_vec(3, 4, vec![0.0_f32; 11]).unwrap_err();
    assert_eq!(err, Error::DataLength { rows: 3, cols: 4, len: 11 });
    assert_eq!(err.to_string(), "data length 11 does not match a 3 × 4 matrix (expected 12)");
}

#[test]
fn matrix_shape_overflow() {
    let err = Matrix::<f32>::zeros(usize::MAX, 2).unwrap_err();
    assert_eq!(err, Error::ShapeOverflow { rows: usize::MAX, cols: 2 });
    assert!(Matrix::from_vec(usize::MAX / 2 + 1, 2, Vec::<f64>::new()).is_err());
    assert!(Matrix::from_fn(1 << 40, 1 << 40, |_, _| 0.0_f64).is_err());
    assert!(MatrixView::from_slice(&[0.0_f64; 4], usize::MAX, 2, usize::MAX, 1).is_err());
}

#[test]
fn matrix_view_past_end() {
    let data = [0.0_f64; 6];
    let err = MatrixView::from_slice(&data, 2, 3, 4, 1).unwrap_err();
    assert_eq!(err, Error::DataLength { rows: 2, cols: 3, len: 6 });
    let err = zeros(2, 3).view().columns(1..5).unwrap_err();
    assert_eq!(err, Error::RangeOutOfBounds { start: 1, end: 5, len: 3 });
}

#[test]
fn empty_matrices_are_valid() {
    assert_eq!(zeros(0, 3).shape(), (0, 3));
    assert_eq!(zeros(3, 0).rows_iter().count(), 3);
    let product = zeros(4, 0).matmul(&zeros(0, 5)).unwrap();
    assert_eq!(product, zeros(4, 5), "an empty inner dimension sums nothing");
    assert_eq!(zeros(0, 3).matmul(&zeros(3, 2)).unwrap().shape(), (0, 2));
    assert_eq!(Matrix::<f64>::from_rows::<[f64; 0]>(&[]).unwrap().shape(), (0, 0));
}

#[test]
fn matmul_inner_dimension_mismatch() {
    let err = zeros(2, 3).matmul(&zeros(4, 5)).unwrap_err();
    assert_eq!(err, Error::MatmulShape { left: (2, 3), right: (4, 5) });
    assert_eq!(err.to_string(), "cannot multiply a 2 × 3 matrix by a 4 × 5 matrix: inner dimensions 3 and 4 differ");
    let err = zeros(2, 3).matmul_transposed(&zeros(4, 5)).unwrap_err();
    assert_eq!(err, Error::MatmulShape { left: (2, 3), right: (5, 4) });
}

#[test]
fn projection_input_width_mismatch() {
    let err = projection(8, 4).forward(&zeros(3, 7)).unwrap_err();
    assert_eq!(err, Error::InputWidth { expected: 8, found: 7 });
    let err = Projection::from_linear(zeros(4, 8), Some(vec![0.0; 8])).unwrap_err();
    assert_eq!(err, Error::BiasLength { expected: 4, found: 8 });
}

#[test]
fn self_attention_input_width_mismatch() {
    let attn = SelfAttention::new(projection(8, 4), projection(8, 4), projection(8, 2)).unwrap();
    let err = attn.forward(&zeros(3, 6)).unwrap_err();
    assert_eq!(err, Error::InputWidth { expected: 8, found: 6 });
    assert_eq!(err.to_string(), "input width 6 does not match the projection input width 8");
}

#[test]
fn self_attention_query_key_width_mismatch() {
    let err = SelfAttention::new(projection(8, 4), projection(8, 3), projection(8, 2)).unwrap_err();
    assert_eq!(err, Error::QueryKeyWidth { query: 4, key: 3 });
    assert_eq!(err.to_string(), "query width 4 does not match key width 3");
    let err = SelfAttention::new(projection(8, 4), projection(6, 4), projection(8, 2)).unwrap_err();
    assert_eq!(err, Error::ProjectionInputs { query: 8, key: 6, value: 8 });
}

#[test]
fn sdpa_shape_mismatches() {
    let err = scaled_dot_product_attention(&zeros(2, 4), &zeros(3, 5), &zeros(3, 2), &Mask::None, None).unwrap_err();
    assert_eq!(err, Error::QueryKeyWidth { query: 4, key: 5 });

    let err = scaled_dot_product_attention(&zeros(2, 4), &zeros(3, 4), &zeros(5, 2), &Mask::None, None).unwrap_err();
    assert_eq!(err, Error::KeyValueRows { keys: 3, values: 5 });
    assert_eq!(err.to_string(), "key count 3 does not match value count 5");
}

#[test]
fn mask_shape_mismatch() {
    let mask = Mask::Allowed(Matrix::from_vec(2, 2, vec![true; 4]).unwrap());
    let err = scaled_dot_product_attention(&zeros(2, 4), &zeros(3, 4), &zeros(3, 2), &mask, None).unwrap_err();
    assert_eq!(err, Error::MaskShape { expected: (2, 3), found: (2, 2) });
    assert_eq!(err.to_string(), "mask shape 2 × 2 does not match attention shape 2 × 3 (queries × keys)");

    let attn = SelfAttention::new(projection(4, 2), projection(4, 2), projection(4, 2)).unwrap();
    let err = attn.forward_masked(&zeros(3, 4), &mask).unwrap_err();
    assert_eq!(err, Error::MaskShape { expected: (3, 3), found: (2, 2) });

    let err = attn.forward_masked(&zeros(3, 4), &Mask::SlidingWindow { window: 0 }).unwrap_err();
    assert_eq!(err, Error::ZeroWindow);
}

#[test]
fn heads_must_divide_width() {
    let err = MultiHeadAttention::new(projection(12, 12), projection(12, 12), projection(12, 12), 5).unwrap_err();
    assert_eq!(err, Error::HeadsDivide { what: "query", width: 12, heads: 5 });
    let err = MultiHeadAttention::new(projection(12, 12), projection(12, 12), projection(12, 10), 4).unwrap_err();
    assert_eq!(err, Error::HeadsDivide { what: "value", width: 10, heads: 4 });
    assert_eq!(err.to_string(), "value width 10 is not divisible by 4 heads");
}

#[test]
fn zero_heads_and_zero_key_width() {
    let err = MultiHeadAttention::new(projection(12, 12), projection(12, 12), projection(12, 12), 0).unwrap_err();
    assert_eq!(err, Error::ZeroHeads);
    let err = MultiHeadAttention::new(projection(12, 0), projection(12, 0), projection(12, 4), 2).unwrap_err();
    assert_eq!(err, Error::ZeroKeyWidth);
    let err = SelfAttention::new(projection(12, 0), projection(12, 0), projection(12, 4)).unwrap_err();
    assert_eq!(err, Error::ZeroKeyWidth);
    let err = scaled_dot_product_attention(&zeros(2, 0), &zeros(3, 0), &zeros(3, 2), &Mask::None, None).unwrap_err();
    assert_eq!(err, Error::ZeroKeyWidth);
}

#[test]
fn invalid_scale_rejected() {
    let attn = SelfAttention::new(projection(4, 2), projection(4, 2), projection(4, 2)).unwrap();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = attn.clone().with_scale(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidScale(_)), "scale {bad} gave {err:?}");
        let err =
            scaled_dot_product_attention(&zeros(1, 2), &zeros(1, 2), &zeros(1, 2), &Mask::None, Some(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidScale(_)), "sdpa scale {bad} gave {err:?}");
    }
}

#[test]
fn output_projection_width_mismatch() {
    let mha = MultiHeadAttention::new(projection(8, 8), projection(8, 8), projection(8, 6), 2).unwrap();
    let err = mha.with_output(projection(8, 8)).unwrap_err();
    assert_eq!(err, Error::OutputInput { expected: 6, found: 8 });
}

#[test]
fn zero_tokens_give_empty_output() {
    let attn = SelfAttention::new(projection(4, 2), projection(4, 2), projection(4, 3)).unwrap();
    let (out, weights) = attn.forward_with_weights(&zeros(0, 4)).unwrap();
    assert_eq!(out.shape(), (0, 3));
    assert_eq!(weights.shape(), (0, 0));

    let mha = MultiHeadAttention::new(projection(4, 4), projection(4, 4), projection(4, 4), 2)
        .unwrap()
        .with_mask(Mask::Causal);
    let (out, weights) = mha.forward_with_weights(&zeros(0, 4)).unwrap();
    assert_eq!(out.shape(), (0, 4));
    assert!(weights.iter().all(|w| w.shape() == (0, 0)));

    let out = scaled_dot_product_attention(&zeros(3, 2), &zeros(0, 2), &zeros(0, 5), &Mask::None, None).unwrap();
    assert_eq!(out, zeros(3, 5), "queries with no keys get zero rows");
}
