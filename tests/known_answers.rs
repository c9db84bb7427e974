//! Small cases with expected values computed outside the crate, in float64 with NumPy
//! 2.4, and written here to ten significant digits.

use qkv::{
    Mask, Matrix, Projection, SelfAttention, log_softmax_in_place, scaled_dot_product_attention,
    scaled_dot_product_attention_weights, softmax_in_place,
};

fn m(rows: &[&[f64]]) -> Matrix<f64> {
    Matrix::from_rows(rows).unwrap()
}

fn assert_close(actual: &Matrix<f64>, expected: &[&[f64]], tol: f64, case: &str) {
    let expected = m(expected);
    assert_eq!(actual.shape(), expected.shape(), "{case}: shape");
    for (i, (a_row, e_row)) in actual.rows_iter().zip(expected.rows_iter()).enumerate() {
        for (j, (a, e)) in a_row.iter().zip(e_row).enumerate() {
            let err = (a - e).abs();
            assert!(err <= tol * e.abs().max(1e-300) || err <= tol, "{case}: ({i}, {j}) is {a}, expected {e}");
        }
    }
}

#[test]
fn self_attention_scale_uses_key_width() {
    let x = m(&[&[1.0, 0.0, 2.0, 0.0], &[0.0, 1.0, 0.0, 2.0], &[1.0, 1.0, 1.0, 1.0]]);
    let w_q = m(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 0.0], &[0.0, 1.0]]);
    let w_k = m(&[&[1.0, 0.0], &[0.0, 1.0], &[0.0, 1.0], &[1.0, 0.0]]);
    let w_v = m(&[&[1.0, 0.0], &[0.0, 1.0], &[0.0, 0.0], &[0.0, 0.0]]);
    let attn = SelfAttention::new(
        Projection::new(w_q, None).unwrap(),
        Projection::new(w_k, None).unwrap(),
        Projection::new(w_v, None).unwrap(),
    )
    .unwrap();
    assert_eq!(attn.scale(), 1.0 / 2.0_f64.sqrt());
    let y = attn.forward(&x).unwrap();
    let expected: &[&[f64]] =
        &[&[0.5282736834, 0.9434526333], &[0.9434526333, 0.5282736834], &[0.8364208992, 0.8364208992]];
    assert_close(&y, expected, 1e-9, "default scale");
}

#[test]
fn sdpa_explicit_scale_replaces_default() {
    let q = m(&[&[1.0, 2.0, 0.0, 1.0], &[0.0, 1.0, 1.0, 0.0]]);
    let k = m(&[&[1.0, 0.0, 1.0, 0.0], &[0.0, 2.0, 0.0, 1.0], &[1.0, 1.0, 1.0, 1.0]]);
    let v = m(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]]);

    let default = scaled_dot_product_attention(&q, &k, &v, &Mask::None, None).unwrap();
    assert_close(&default, &[&[0.4259030070, 0.9223044209], &[0.6163482688, 0.7673034624]], 1e-9, "default");

    let one = scaled_dot_product_attention(&q, &k, &v, &Mask::None, Some(1.0)).unwrap();
    assert_close(&one, &[&[0.2786008157, 0.9867871130], &[0.5776812017, 0.8446375965]], 1e-9, "scale 1.0");

    let half = scaled_dot_product_attention(&q, &k, &v, &Mask::None, Some(0.5)).unwrap();
    assert_eq!(half, default, "scale 0.5 equals the default 1/√4");
}

#[test]
fn causal_aligns_bottom_right() {
    let q = m(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let kv = m(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[2.0, 0.0], &[0.0, 2.0]]);
    let (out, weights) = scaled_dot_product_attention_weights(&q, &kv, &kv, &Mask::Causal, None).unwrap();
    assert_close(&out, &[&[1.3395230987, 0.3302384507], &[0.4944318503, 1.2078031824]], 1e-9, "causal 2 × 5");
    assert_eq!(weights[(0, 4)], 0.0, "query 0 must not see key 4");
    assert!(weights[(0, 3)] > 0.0, "query 0 sees key 3");
    assert!(weights[(1, 4)] > 0.0, "query 1 sees key 4");

    let one = m(&[&[0.5, -0.5]]);
    let k4 = m(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0], &[2.0, 0.0]]);
    let (_, w) = scaled_dot_product_attention_weights(&one, &k4, &k4, &Mask::Causal, None).unwrap();
    for j in 0..4 {
        assert!(w[(0, j)] > 0.0, "one query against 4 keys must see key {j}");
    }
}

#[test]
fn fully_masked_row_is_zero() {
    let q = m(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]]);
    let k = m(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, -1.0]]);
    let v = m(&[&[1.0, 2.0], &[3.0, 4.0], &[5.0, 6.0]]);
    let allowed = Matrix::from_rows(&[[true, true, false], [false, false, false], [true, false, true]]).unwrap();
    let (out, weights) = scaled_dot_product_attention_weights(&q, &k, &v, &Mask::Allowed(allowed), None).unwrap();
    assert_close(&out, &[&[1.6604769013, 2.6604769013], &[0.0, 0.0], &[2.3209538027, 3.3209538027]], 1e-9, "mask");
    assert_eq!(weights.row(1), Some(&[0.0, 0.0, 0.0][..]));
}

#[test]
fn fully_masked_row_is_zero_for_each_length() {
    for len in 1..=6 {
        let q = Matrix::from_fn(1, 3, |_, j| j as f64 - 1.0).unwrap();
        let k = Matrix::from_fn(len, 3, |i, j| (i * 3 + j) as f64 * 0.3).unwrap();
        let v = Matrix::from_fn(len, 2, |i, j| (i + j) as f64 + 1.0).unwrap();
        let mask = Mask::ValidKeys(vec![false; len]);
        let (out, weights) = scaled_dot_product_attention_weights(&q, &k, &v, &mask, None).unwrap();
        assert_eq!(out.as_slice(), &[0.0, 0.0], "output for {len} keys");
        assert!(weights.as_slice().iter().all(|&w| w == 0.0), "weights for {len} keys: {weights:?}");
    }
}

#[test]
fn masked_key_weight_is_exactly_zero() {
    let q = m(&[&[100.0, 100.0]]);
    let k = m(&[&[-80.0, -80.0], &[-81.0, -80.0], &[0.0, 0.0]]);
    let v = m(&[&[1.0, 0.0], &[0.0, 1.0], &[9.0, 9.0]]);
    let mask = Mask::ValidKeys(vec![true, true, false]);
    let (out, weights) = scaled_dot_product_attention_weights(&q, &k, &v, &mask, None).unwrap();
    assert_eq!(weights[(0, 2)], 0.0, "masked key weight");
    assert_eq!(out[(0, 0)], 1.0, "output column 0");
    let rel = (out[(0, 1)] - 1.95e-31).abs() / 1.95e-31;
    assert!(rel < 0.01, "output column 1 is {:e}, expected about 1.95e-31", out[(0, 1)]);
}

#[test]
fn masked_nan_value_does_not_leak() {
    let q = m(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let k = m(&[&[1.0, 0.0], &[f64::NAN, 1.0], &[0.5, 0.5]]);
    let v = m(&[&[1.0, 2.0], &[f64::NAN, f64::INFINITY], &[3.0, 4.0]]);
    let mask = Mask::from_key_padding(&[false, true, false]);
    let (out, weights) = scaled_dot_product_attention_weights(&q, &k, &v, &mask, None).unwrap();
    assert!(out.as_slice().iter().all(|x| x.is_finite()), "output {out:?}");
    assert_eq!(weights[(0, 1)], 0.0);
    assert_eq!(weights[(1, 1)], 0.0);
}

#[test]
fn nan_or_infinite_score_makes_row_nan() {
    let q = m(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let k = m(&[&[f64::NAN, 0.0], &[0.0, 1.0]]);
    let v = m(&[&[1.0, 2.0], &[3.0, 4.0]]);
    let out = scaled_dot_product_attention(&q, &k, &v, &Mask::None, None).unwrap();
    assert!(out.row(0).unwrap().iter().all(|x| x.is_nan()), "row 0 {:?}", out.row(0));
    assert!(out.row(1).unwrap().iter().all(|x| x.is_nan()), "row 1 (0·NaN is NaN) {:?}", out.row(1));

    let k = m(&[&[f64::INFINITY, 0.0], &[0.0, 1.0]]);
    let out = scaled_dot_product_attention(&q, &k, &v, &Mask::None, None).unwrap();
    assert!(out.row(0).unwrap().iter().all(|x| x.is_nan()), "+inf score row {:?}", out.row(0));
}

#[test]
fn softmax_never_overflows() {
    for row in [[1000.0_f64, 999.0], [-1000.0, -1001.0]] {
        let mut r = row;
        softmax_in_place(&mut r);
        assert!((r[0] - 0.7310585786).abs() < 1e-10, "{row:?} -> {r:?}");
        assert!((r[1] - 0.2689414214).abs() < 1e-10, "{row:?} -> {r:?}");
    }
    let mut r = [1000.0_f32, 999.0];
    softmax_in_place(&mut r);
    assert!((r[0] - 0.731_058_6).abs() < 1e-6, "f32 {r:?}");
    assert!((r[1] - 0.268_941_4).abs() < 1e-6, "f32 {r:?}");
}

#[test]
fn softmax_single_element_is_one() {
    for x in [0.7, 1e30, -1e30] {
        let mut r = [x];
        softmax_in_place(&mut r);
        assert_eq!(r, [1.0], "softmax of [{x}]");
        let mut l = [x];
        log_softmax_in_place(&mut l);
        assert_eq!(l, [0.0], "log-softmax of [{x}]");

        let mut r32 = [x as f32];
        softmax_in_place(&mut r32);
        assert_eq!(r32, [1.0], "f32 softmax of [{x}]");
        let mut l32 = [x as f32];
        log_softmax_in_place(&mut l32);
        assert_eq!(l32, [0.0], "f32 log-softmax of [{x}]");
    }
}

#[test]
fn softmax_huge_f32_logits_finite() {
    let mut r = [1e30_f32, -1e30, 1e30, 0.0];
    softmax_in_place(&mut r);
    assert_eq!(r, [0.5, 0.0, 0.5, 0.0]);
}

#[test]
fn matmul_integer_matrices_exact() {
    let a = m(&[
        &[1.0, -2.0, 3.0, 0.0, 5.0],
        &[2.0, 1.0, 0.0, -1.0, 4.0],
        &[0.0, 3.0, -2.0, 2.0, 1.0],
        &[-1.0, 0.0, 1.0, 3.0, -2.0],
        &[4.0, 2.0, 1.0, 0.0, -3.0],
    ]);
    let b = m(&[&[1.0, 0.0, 2.0], &[-1.0, 3.0, 1.0], &[2.0, 1.0, 0.0], &[0.0, -2.0, 1.0], &[1.0, 1.0, -1.0]]);
    let expected = m(&[&[14.0, 2.0, -5.0], &[5.0, 9.0, 0.0], &[-6.0, 4.0, 4.0], &[-1.0, -7.0, 3.0], &[1.0, 4.0, 13.0]]);
    assert_eq!(a.matmul(&b).unwrap(), expected);
    let a32: Matrix<f32> = Matrix::from_fn(5, 5, |i, j| a[(i, j)] as f32).unwrap();
    let b32: Matrix<f32> = Matrix::from_fn(5, 3, |i, j| b[(i, j)] as f32).unwrap();
    assert_eq!(a32.matmul(&b32).unwrap(), Matrix::from_fn(5, 3, |i, j| expected[(i, j)] as f32).unwrap());
}

#[test]
fn matmul_small_shapes_match_triple_loop() {
    for m_ in 1..=6 {
        for k in 1..=6 {
            for n in 1..=6 {
                let a = Matrix::from_fn(m_, k, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0).unwrap();
                let b = Matrix::from_fn(k, n, |i, j| ((i * 5 + j * 2) % 7) as f64 - 3.0).unwrap();
                let c = a.matmul(&b).unwrap();
                for i in 0..m_ {
                    for j in 0..n {
                        let mut sum = 0.0;
                        for p in 0..k {
                            sum += a[(i, p)] * b[(p, j)];
                        }
                        assert_eq!(c[(i, j)], sum, "({m_}, {k}, {n}) at ({i}, {j})");
                    }
                }
            }
        }
    }
}
