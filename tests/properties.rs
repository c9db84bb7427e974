//! Property tests on random shapes and values, checked against the plain float64
//! reference in `common::reference`.

mod common;

use common::reference::{self, Mat};
use proptest::prelude::*;
use qkv::{Mask, Matrix, Scalar, scaled_dot_product_attention, scaled_dot_product_attention_weights, softmax_in_place};

const CASES: u32 = 96;

/// Generates a `rows × cols` matrix of values in `-2..2`.
fn matrix(rows: usize, cols: usize) -> impl Strategy<Value = Matrix<f64>> {
    prop::collection::vec(-2.0..2.0_f64, rows * cols).prop_map(move |data| Matrix::from_vec(rows, cols, data).unwrap())
}

fn to<T: Scalar>(m: &Matrix<f64>) -> Matrix<T> {
    Matrix::from_fn(m.rows(), m.cols(), |i, j| T::from(m[(i, j)]).unwrap()).unwrap()
}

/// Asserts `|c − ref| ≤ tol · Σ_p |a_ip·b_pj|` for every element, the scale of rounding
/// error a dot product of that length can have.
fn assert_product<T: Scalar>(c: &Matrix<T>, a: &Mat, b: &Mat, tol: f64) -> Result<(), TestCaseError> {
    let expected = reference::matmul(a, b);
    prop_assert_eq!(c.shape(), (expected.rows, expected.cols));
    for i in 0..expected.rows {
        for j in 0..expected.cols {
            let magnitude: f64 = (0..a.cols).map(|p| (a.at(i, p) * b.at(p, j)).abs()).sum();
            let got = c[(i, j)].to_f64().unwrap();
            let err = (got - expected.at(i, j)).abs();
            prop_assert!(
                err <= tol * magnitude + f64::MIN_POSITIVE,
                "({}, {}): {} vs reference {} (err {:e}, magnitude {:e})",
                i,
                j,
                got,
                expected.at(i, j),
                err,
                magnitude
            );
        }
    }
    Ok(())
}

/// Asserts that `out` matches the reference attention within `tol` times the largest
/// magnitude in `v`'s column.
fn assert_attention<T: Scalar>(
    out: &Matrix<T>,
    q: &Matrix<f64>,
    k: &Matrix<f64>,
    v: &Matrix<f64>,
    mask: &Mask,
    tol: f64,
) -> Result<(), TestCaseError> {
    let (q_len, k_len) = (q.rows(), k.rows());
    let scale = 1.0 / (k.cols() as f64).sqrt();
    let (expected, _) =
        reference::attention(&Mat::from_matrix(q), &Mat::from_matrix(k), &Mat::from_matrix(v), scale, |i, j| {
            mask.allows(i, j, q_len, k_len)
        });
    for i in 0..q_len {
        for c in 0..v.cols() {
            let column_max = (0..k_len).map(|j| v[(j, c)].abs()).fold(0.0, f64::max);
            let got = out[(i, c)].to_f64().unwrap();
            let err = (got - expected.at(i, c)).abs();
            prop_assert!(
                err <= tol * column_max + f64::MIN_POSITIVE,
                "row {} col {}: {} vs reference {} (err {:e})",
                i,
                c,
                got,
                expected.at(i, c),
                err
            );
        }
    }
    Ok(())
}

/// Generates Q, K and V for one attention call: `q_len × d_k`, `k_len × d_k` and
/// `k_len × d_v`.
fn qkv_inputs() -> impl Strategy<Value = (Matrix<f64>, Matrix<f64>, Matrix<f64>)> {
    (0..24usize, 0..24usize, 1..12usize, 0..10usize)
        .prop_flat_map(|(q_len, k_len, d_k, d_v)| (matrix(q_len, d_k), matrix(k_len, d_k), matrix(k_len, d_v)))
}

/// Generates a mask of any kind that fits `q_len × k_len`.
fn mask(q_len: usize, k_len: usize) -> impl Strategy<Value = Mask> {
    prop_oneof![
        Just(Mask::None),
        Just(Mask::Causal),
        (1..8usize).prop_map(|window| Mask::SlidingWindow { window }),
        prop::collection::vec(any::<bool>(), k_len).prop_map(Mask::ValidKeys),
        prop::collection::vec(prop::bool::weighted(0.7), q_len * k_len)
            .prop_map(move |bits| Mask::Allowed(Matrix::from_vec(q_len, k_len, bits).unwrap())),
    ]
}

fn qkv_and_mask() -> impl Strategy<Value = (Matrix<f64>, Matrix<f64>, Matrix<f64>, Mask)> {
    qkv_inputs().prop_flat_map(|(q, k, v)| {
        let m = mask(q.rows(), k.rows());
        (Just(q), Just(k), Just(v), m)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn matmul_matches_reference((m, k, n) in (0..=40usize, 0..=40usize, 0..=40usize), seed in any::<u64>()) {
        let a = Matrix::from_fn(m, k, |i, j| pseudo(seed, i, j)).unwrap();
        let b = Matrix::from_fn(k, n, |i, j| pseudo(seed ^ 0x9e37, i, j)).unwrap();
        let (ra, rb) = (Mat::from_matrix(&a), Mat::from_matrix(&b));
        assert_product(&a.matmul(&b).unwrap(), &ra, &rb, 1e-14)?;
        assert_product(&to::<f32>(&a).matmul(&to::<f32>(&b)).unwrap(), &ra, &rb, 1e-6)?;
    }

    #[test]
    fn matmul_transposed_matches_reference((m, k, n) in (0..=40usize, 0..=40usize, 0..=40usize), seed in any::<u64>()) {
        let a = Matrix::from_fn(m, k, |i, j| pseudo(seed, i, j)).unwrap();
        let b = Matrix::from_fn(n, k, |i, j| pseudo(seed ^ 0x51ed, i, j)).unwrap();
        let (ra, rbt) = (Mat::from_matrix(&a), Mat::from_matrix(&b).transpose());
        assert_product(&a.matmul_transposed(&b).unwrap(), &ra, &rbt, 1e-14)?;
        assert_product(&to::<f32>(&a).matmul_transposed(&to::<f32>(&b)).unwrap(), &ra, &rbt, 1e-6)?;
        // Aᵀ·B through a transposed view.
        let at = a.transpose();
        assert_product(&at.view().t().matmul(b.view().t()).unwrap(), &ra, &rbt, 1e-14)?;
    }

    #[test]
    fn softmax_sums_to_one_and_ignores_shift(row in prop::collection::vec(-50.0..50.0_f64, 1..40), shift in -100.0..100.0_f64) {
        let mut p = row.clone();
        softmax_in_place(&mut p);
        let sum: f64 = p.iter().sum();
        prop_assert!((sum - 1.0).abs() < 1e-14, "sum {}", sum);
        prop_assert!(p.iter().all(|&w| (0.0..=1.0).contains(&w)), "weights {:?}", p);

        let mut shifted: Vec<f64> = row.iter().map(|x| x + shift).collect();
        softmax_in_place(&mut shifted);
        for (a, b) in p.iter().zip(&shifted) {
            prop_assert!((a - b).abs() < 1e-12, "softmax changed under shift {}: {} vs {}", shift, a, b);
        }
    }

    #[test]
    fn attention_matches_reference((q, k, v, mask) in qkv_and_mask()) {
        let out = scaled_dot_product_attention(&q, &k, &v, &mask, None).unwrap();
        assert_attention(&out, &q, &k, &v, &mask, 1e-12)?;
        let out32 = scaled_dot_product_attention(&to::<f32>(&q), &to::<f32>(&k), &to::<f32>(&v), &mask, None).unwrap();
        assert_attention(&out32, &q, &k, &v, &mask, 1e-5)?;
        let (with_weights, _) = scaled_dot_product_attention_weights(&q, &k, &v, &mask, None).unwrap();
        assert_attention(&with_weights, &q, &k, &v, &mask, 1e-12)?;
    }

    #[test]
    fn output_lies_within_allowed_values((q, k, v, mask) in qkv_and_mask()) {
        let out = scaled_dot_product_attention(&q, &k, &v, &mask, None).unwrap();
        let (q_len, k_len) = (q.rows(), k.rows());
        for i in 0..q_len {
            let allowed: Vec<usize> = (0..k_len).filter(|&j| mask.allows(i, j, q_len, k_len)).collect();
            for c in 0..v.cols() {
                let y = out[(i, c)];
                if allowed.is_empty() {
                    prop_assert_eq!(y, 0.0, "row {} has no visible key", i);
                    continue;
                }
                let lo = allowed.iter().map(|&j| v[(j, c)]).fold(f64::INFINITY, f64::min);
                let hi = allowed.iter().map(|&j| v[(j, c)]).fold(f64::NEG_INFINITY, f64::max);
                let slack = 1e-12 * lo.abs().max(hi.abs());
                prop_assert!(lo - slack <= y && y <= hi + slack, "row {} col {}: {} outside [{}, {}]", i, c, y, lo, hi);
            }
        }
    }

    #[test]
    fn permuting_tokens_permutes_rows((q, k, v) in qkv_inputs(), seed in any::<u64>()) {
        // Self-attention is equivariant: permuting queries permutes output rows, and
        // permuting keys and values together changes nothing but rounding.
        let n = q.rows();
        let mut perm: Vec<usize> = (0..n).collect();
        let mut state = seed | 1;
        for i in (1..n).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            perm.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let q_perm = Matrix::from_fn(n, q.cols(), |i, j| q[(perm[i], j)]).unwrap();
        let out = scaled_dot_product_attention(&q, &k, &v, &Mask::None, None).unwrap();
        let out_perm = scaled_dot_product_attention(&q_perm, &k, &v, &Mask::None, None).unwrap();
        for (i, &from) in perm.iter().enumerate() {
            prop_assert_eq!(out_perm.row(i), out.row(from), "row {} (from {})", i, from);
        }

        let kn = k.rows();
        let k_perm = Matrix::from_fn(kn, k.cols(), |i, j| k[(kn - 1 - i, j)]).unwrap();
        let v_perm = Matrix::from_fn(kn, v.cols(), |i, j| v[(kn - 1 - i, j)]).unwrap();
        let out_kv = scaled_dot_product_attention(&q, &k_perm, &v_perm, &Mask::None, None).unwrap();
        for (a, b) in out.as_slice().iter().zip(out_kv.as_slice()) {
            prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()), "{} vs {} after reversing keys", a, b);
        }
    }

    #[test]
    fn causal_row_ignores_later_tokens((q, k, v) in qkv_inputs(), cut in 0..24usize, noise in -5.0..5.0_f64) {
        // Queries and keys of one sequence: q_len == k_len.
        let n = q.rows().min(k.rows());
        let q = q.view().row_range(0..n).unwrap().to_matrix();
        let k = k.view().row_range(0..n).unwrap().to_matrix();
        let v = v.view().row_range(0..n).unwrap().to_matrix();
        let cut = cut.min(n);

        let changed = |m: &Matrix<f64>| Matrix::from_fn(m.rows(), m.cols(), |i, j| if i >= cut { m[(i, j)] + noise } else { m[(i, j)] }).unwrap();
        let out = scaled_dot_product_attention(&q, &k, &v, &Mask::Causal, None).unwrap();
        let out2 = scaled_dot_product_attention(&changed(&q), &changed(&k), &changed(&v), &Mask::Causal, None).unwrap();
        for i in 0..cut {
            prop_assert_eq!(out.row(i), out2.row(i), "row {} changed when tokens from {} changed", i, cut);
        }
    }

    #[test]
    fn row_alone_equals_row_in_batch((q, k, v, mask) in qkv_and_mask()) {
        let out = scaled_dot_product_attention(&q, &k, &v, &mask, None).unwrap();
        let out32 = scaled_dot_product_attention(&to::<f32>(&q), &to::<f32>(&k), &to::<f32>(&v), &mask, None).unwrap();
        let (q_len, k_len) = (q.rows(), k.rows());
        for i in 0..q_len {
            // The same row as a one-query call, with the mask row it had in the batch.
            let row_mask = Mask::Allowed(Matrix::from_fn(1, k_len, |_, j| mask.allows(i, j, q_len, k_len)).unwrap());
            let q_i = q.view().row_range(i..i + 1).unwrap().to_matrix();
            let alone = scaled_dot_product_attention(&q_i, &k, &v, &row_mask, None).unwrap();
            prop_assert_eq!(alone.row(0), out.row(i), "f64 row {}", i);
            let alone32 = scaled_dot_product_attention(&to::<f32>(&q_i), &to::<f32>(&k), &to::<f32>(&v), &row_mask, None).unwrap();
            prop_assert_eq!(alone32.row(0), out32.row(i), "f32 row {}", i);
        }
    }

    #[test]
    fn f32_agrees_with_f64((q, k, v, mask) in qkv_and_mask()) {
        let out = scaled_dot_product_attention(&q, &k, &v, &mask, None).unwrap();
        let out32 = scaled_dot_product_attention(&to::<f32>(&q), &to::<f32>(&k), &to::<f32>(&v), &mask, None).unwrap();
        for (a, b) in out.as_slice().iter().zip(out32.as_slice()) {
            let b = f64::from(*b);
            prop_assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "f64 {} vs f32 {}", a, b);
        }
    }
}

/// Returns a deterministic value in `-2..2` for element `(i, j)` of a matrix seeded by
/// `seed`, so shapes and values can be drawn separately.
fn pseudo(seed: u64, i: usize, j: usize) -> f64 {
    let mut x = seed ^ ((i as u64) << 32 | j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
}
