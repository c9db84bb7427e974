//! Edge cases of the fused attention kernel: tile boundaries, masked NaN, empty and NaN
//! rows, huge logits, thread counts, row independence and strided views, on every
//! instruction set this CPU supports.

mod common;

use std::num::NonZeroUsize;

use common::reference::{Mat, attention};
use qkv::kernels::{FusedOptions, Isa, attention_fused};
use qkv::{Mask, Matrix, Parallelism, Scalar, scaled_dot_product_attention};

/// Returns a `rows × cols` matrix of values in `[-1, 1)`, fixed by `seed`.
fn matrix<T: Scalar>(rows: usize, cols: usize, seed: u64) -> Matrix<T> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Matrix::from_fn(rows, cols, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        T::from((state >> 11) as f64 / (1u64 << 52) as f64 - 1.0).unwrap()
    })
    .unwrap()
}

fn options(isa: Isa, key_block: usize) -> FusedOptions {
    FusedOptions { isa, key_block: NonZeroUsize::new(key_block), parallelism: Parallelism::Sequential }
}

/// Runs one head on the fused path.
fn fused<T: Scalar>(q: &Matrix<T>, k: &Matrix<T>, v: &Matrix<T>, mask: &Mask, options: FusedOptions) -> Matrix<T> {
    let scale = T::one() / T::from(q.cols()).unwrap().sqrt();
    attention_fused(q.view(), k.view(), v.view(), 1, 1, mask, scale, options).unwrap()
}

/// Checks one head against the float64 reference, with `allowed` restating the mask.
fn check_against_reference<T: Scalar>(
    q: &Matrix<T>,
    k: &Matrix<T>,
    v: &Matrix<T>,
    mask: &Mask,
    allowed: impl Fn(usize, usize) -> bool,
    options: FusedOptions,
    tol: f64,
) {
    let got = fused(q, k, v, mask, options);
    let scale = 1.0 / (q.cols() as f64).sqrt();
    let (want, _) = attention(&Mat::from_matrix(q), &Mat::from_matrix(k), &Mat::from_matrix(v), scale, allowed);
    for (index, (a, e)) in got.as_slice().iter().zip(&want.data).enumerate() {
        let a = a.to_f64().unwrap();
        assert!(
            (a - e).abs() <= tol,
            "{:?}: element {index} is {a:e}, expected {e:e} (diff {:e})",
            options.isa,
            (a - e).abs()
        );
    }
}

fn for_each_isa(mut body: impl FnMut(Isa)) {
    for isa in Isa::supported() {
        body(isa);
    }
}

#[test]
fn fused_first_key_block_fully_masked() {
    // Keys 0..16 are padding, so with blocks of 8 the first two blocks are skipped.
    let (q_len, k_len, key_block) = (21, 37, 8);
    let valid: Vec<bool> = (0..k_len).map(|j| j >= 16).collect();
    let mask = Mask::ValidKeys(valid.clone());
    for_each_isa(|isa| {
        let (q, k, v) = (matrix::<f64>(q_len, 12, 1), matrix(k_len, 12, 2), matrix(k_len, 5, 3));
        check_against_reference(&q, &k, &v, &mask, |_, j| valid[j], options(isa, key_block), 1e-12);
        let (q, k, v) = (matrix::<f32>(q_len, 12, 1), matrix(k_len, 12, 2), matrix(k_len, 5, 3));
        check_against_reference(&q, &k, &v, &mask, |_, j| valid[j], options(isa, key_block), 1e-5);
    });
}

#[test]
fn fused_sliding_window_skips_leading_blocks() {
    // With a window of 5, the last rows' first visible key lies several blocks in.
    let (n, window, key_block) = (70, 5, 8);
    let mask = Mask::SlidingWindow { window };
    let allowed = |i: usize, j: usize| j <= i && j + window > i;
    for_each_isa(|isa| {
        let (q, k, v) = (matrix::<f64>(n, 9, 4), matrix(n, 9, 5), matrix(n, 7, 6));
        check_against_reference(&q, &k, &v, &mask, allowed, options(isa, key_block), 1e-12);
    });
}

#[test]
fn fused_last_block_of_one_key() {
    let key_block = 16;
    let k_len = 3 * key_block + 1;
    for_each_isa(|isa| {
        for (mask, q_len) in [(Mask::None, 5), (Mask::Causal, k_len)] {
            let causal = mask == Mask::Causal;
            let allowed = |i: usize, j: usize| !causal || j <= i + k_len - q_len;
            let (q, k, v) = (matrix::<f64>(q_len, 8, 7), matrix(k_len, 8, 8), matrix(k_len, 3, 9));
            check_against_reference(&q, &k, &v, &mask, allowed, options(isa, key_block), 1e-12);
            let (q, k, v) = (matrix::<f32>(q_len, 8, 7), matrix(k_len, 8, 8), matrix(k_len, 3, 9));
            check_against_reference(&q, &k, &v, &mask, allowed, options(isa, key_block), 1e-5);
        }
    });
}

#[test]
fn fused_only_key_in_last_block_is_copied() {
    // Row 3 sees only the last key, so its weight is exactly 1 and its output is that
    // value row, bit for bit. The other rows see every key.
    let (q_len, k_len, key_block) = (9, 50, 16);
    let mask = Mask::allowed_from_fn(q_len, k_len, |i, j| i != 3 || j == k_len - 1).unwrap();
    for_each_isa(|isa| {
        let (q, k, v) = (matrix::<f32>(q_len, 6, 10), matrix(k_len, 6, 11), matrix(k_len, 4, 12));
        let out = fused(&q, &k, &v, &mask, options(isa, key_block));
        assert_eq!(out.row(3), v.row(k_len - 1), "{isa:?}: row 3 should copy the last value row");
        check_against_reference(&q, &k, &v, &mask, |i, j| i != 3 || j == k_len - 1, options(isa, key_block), 1e-5);
    });
}

#[test]
fn fused_masked_nan_does_not_leak() {
    // Causal: every key after row i is masked for it, and those keys and values are NaN
    // beyond key 40. Rows up to 40 must stay finite, including those that share a strip
    // and a key block with rows that do see the NaN keys.
    let (n, nan_from) = (64, 41);
    for_each_isa(|isa| {
        let q = matrix::<f32>(n, 8, 13);
        let mut k = matrix::<f32>(n, 8, 14);
        let mut v = matrix::<f32>(n, 8, 15);
        for j in nan_from..n {
            k.row_mut(j).unwrap().fill(f32::NAN);
            v.row_mut(j).unwrap().fill(f32::NAN);
        }
        let out = fused(&q, &k, &v, &Mask::Causal, options(isa, 16));
        for i in 0..nan_from {
            assert!(out.row(i).unwrap().iter().all(|x| x.is_finite()), "{isa:?}: row {i} is {:?}", out.row(i));
        }
        for i in nan_from..n {
            assert!(out.row(i).unwrap().iter().all(|x| x.is_nan()), "{isa:?}: row {i} sees a NaN key");
        }

        // Padding keys holding NaN are masked for every row.
        let valid: Vec<bool> = (0..n).map(|j| j < nan_from).collect();
        let out = fused(&q, &k, &v, &Mask::ValidKeys(valid), options(isa, 16));
        assert!(out.as_slice().iter().all(|x| x.is_finite()), "{isa:?}: NaN padding leaked");
    });
}

#[test]
fn fused_fully_masked_row_is_zero() {
    let (q_len, k_len) = (7, 30);
    let mask = Mask::allowed_from_fn(q_len, k_len, |i, j| i != 2 && (i + j) % 3 != 0).unwrap();
    for_each_isa(|isa| {
        let (q, k, v) = (matrix::<f64>(q_len, 5, 16), matrix(k_len, 5, 17), matrix(k_len, 3, 18));
        let out = fused(&q, &k, &v, &mask, options(isa, 8));
        assert_eq!(out.row(2), Some(&[0.0; 3][..]), "{isa:?}: a row with no visible key");

        // No keys at all: every row is zero.
        let (k, v) = (matrix::<f64>(0, 5, 17), matrix(0, 3, 18));
        let out = fused(&q, &k, &v, &Mask::None, options(isa, 8));
        assert!(out.as_slice().iter().all(|&x| x == 0.0), "{isa:?}: zero keys");
    });
}

#[test]
fn fused_nan_or_infinite_score_makes_row_nan() {
    let (q_len, k_len, d) = (6, 20, 4);
    for_each_isa(|isa| {
        // A NaN in query row 1 makes its scores NaN.
        let mut q = matrix::<f32>(q_len, d, 19);
        let mut k = matrix::<f32>(k_len, d, 20);
        let v = matrix::<f32>(k_len, 3, 21);
        q[(1, 0)] = f32::NAN;
        let out = fused(&q, &k, &v, &Mask::None, options(isa, 8));
        assert!(out.row(1).unwrap().iter().all(|x| x.is_nan()), "{isa:?}: NaN score row is {:?}", out.row(1));
        assert!(out.row(0).unwrap().iter().all(|x| x.is_finite()), "{isa:?}: row 0 is {:?}", out.row(0));

        // Key 5 scores +∞ for row 4, the only row allowed to see it.
        q[(1, 0)] = 0.5;
        q.row_mut(4).unwrap().fill(1.0);
        k.row_mut(5).unwrap().fill(f32::INFINITY);
        let mask = Mask::allowed_from_fn(q_len, k_len, |i, j| j != 5 || i == 4).unwrap();
        let out = fused(&q, &k, &v, &mask, options(isa, 8));
        assert!(out.row(4).unwrap().iter().all(|x| x.is_nan()), "{isa:?}: +inf score row is {:?}", out.row(4));
        for i in [0, 1, 2, 3, 5] {
            assert!(out.row(i).unwrap().iter().all(|x| x.is_finite()), "{isa:?}: row {i} is {:?}", out.row(i));
        }
    });
}

#[test]
fn fused_huge_logits_stay_finite() {
    // Scores of ±1e30 in f32: the row max is subtracted before exp, so nothing
    // overflows, and the weight goes to the largest score.
    for_each_isa(|isa| {
        let q = Matrix::from_rows(&[[1e15_f32], [-1e15]]).unwrap();
        let k = Matrix::from_rows(&[[1e15_f32], [-1e15], [0.0]]).unwrap();
        let v = Matrix::from_rows(&[[1.0_f32, 0.0], [0.0, 1.0], [0.5, 0.5]]).unwrap();
        let out = attention_fused(q.view(), k.view(), v.view(), 1, 1, &Mask::None, 1.0, options(isa, 2)).unwrap();
        assert_eq!(out.as_slice(), &[1.0, 0.0, 0.0, 1.0], "{isa:?}");
    });
}

#[test]
fn fused_bit_identical_across_threads() {
    // Grouped-query attention, 4 query heads over 2 key/value heads.
    let (n, d) = (150, 16);
    for_each_isa(|isa| {
        let (q, k, v) = (matrix::<f32>(n, 4 * d, 22), matrix(n, 2 * d, 23), matrix(n, 2 * d, 24));
        let run = |parallelism| {
            let options = FusedOptions { isa, key_block: None, parallelism };
            attention_fused(q.view(), k.view(), v.view(), 4, 2, &Mask::Causal, 0.25, options).unwrap()
        };
        let sequential = run(Parallelism::Sequential);
        for threads in [2, 3, 7] {
            let many = run(Parallelism::Threads(NonZeroUsize::new(threads).unwrap()));
            let same = sequential.as_slice().iter().zip(many.as_slice()).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa:?}: {threads} threads differ from one");
        }
        assert_eq!(sequential, run(Parallelism::Auto), "{isa:?}: Auto differs from one thread");
    });
}

#[test]
fn fused_last_rows_alone_match_full_call() {
    // Causal masks align bottom-right, so the last m query rows computed alone (as in a
    // decoding step) must equal the last m rows of the full call, bit for bit, although
    // they fall into different strips.
    let (n, d) = (77, 24);
    for_each_isa(|isa| {
        let (q, k, v) = (matrix::<f32>(n, d, 25), matrix(n, d, 26), matrix(n, d, 27));
        let full = fused(&q, &k, &v, &Mask::Causal, options(isa, 16));
        for m in [1, 5, 40] {
            let tail = q.view().row_range(n - m..n).unwrap().to_matrix();
            let part = fused(&tail, &k, &v, &Mask::Causal, options(isa, 16));
            for r in 0..m {
                let (a, b) = (part.row(r).unwrap(), full.row(n - m + r).unwrap());
                assert!(
                    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{isa:?}: row {} alone differs from the full call (m = {m})",
                    n - m + r
                );
            }
        }
    });
}

#[test]
fn fused_strided_views_match_contiguous() {
    // Transposed views have a column stride other than 1, so the kernel copies their
    // key and value blocks. The arithmetic, and so the bits, stay the same.
    let (n, d) = (45, 10);
    for_each_isa(|isa| {
        let (q, k, v) = (matrix::<f64>(n, d, 28), matrix::<f64>(n, d, 29), matrix::<f64>(n, 6, 30));
        let (k_t, v_t) = (k.transpose(), v.transpose());
        let options = options(isa, 8);
        let contiguous = attention_fused(q.view(), k.view(), v.view(), 1, 1, &Mask::Causal, 0.3, options).unwrap();
        let strided = attention_fused(q.view(), k_t.view().t(), v_t.view().t(), 1, 1, &Mask::Causal, 0.3, options);
        assert_eq!(contiguous, strided.unwrap(), "{isa:?}");
    });
}

#[test]
fn public_functions_use_fused_path() {
    let (q, k, v) = (matrix::<f32>(33, 8, 31), matrix(40, 8, 32), matrix(40, 8, 33));
    let public = scaled_dot_product_attention(&q, &k, &v, &Mask::Causal, None).unwrap();
    let scale = 1.0 / 8f32.sqrt();
    let fused = attention_fused(q.view(), k.view(), v.view(), 1, 1, &Mask::Causal, scale, FusedOptions::default());
    assert_eq!(public, fused.unwrap());
}
