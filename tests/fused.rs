//! Property tests of the fused attention kernel against a plain float64 reference, on
//! every instruction set this CPU supports. Cases draw random shapes, masks, key blocks
//! that do not divide the key count, and one head or grouped heads, in `f32` and `f64`.

mod common;

use std::num::NonZeroUsize;

use common::reference::{Mat, attention};
use proptest::prelude::*;
use qkv::kernels::{FusedOptions, Isa, attention_fused};
use qkv::{Mask, Matrix, Parallelism, Scalar};

/// A mask kind with the parameters the strategy drew for it.
#[derive(Debug, Clone)]
enum MaskCase {
    None,
    Causal,
    SlidingWindow(usize),
    ValidKeys(Vec<bool>),
    Allowed(Vec<bool>),
}

impl MaskCase {
    fn mask(&self, q_len: usize, k_len: usize) -> Mask {
        match self {
            MaskCase::None => Mask::None,
            MaskCase::Causal => Mask::Causal,
            MaskCase::SlidingWindow(window) => Mask::SlidingWindow { window: *window },
            MaskCase::ValidKeys(valid) => Mask::ValidKeys(valid.clone()),
            MaskCase::Allowed(allowed) => Mask::allowed_from_fn(q_len, k_len, |i, j| allowed[i * k_len + j]).unwrap(),
        }
    }

    /// Returns whether query `i` sees key `j`, written from the definitions in the mask
    /// docs rather than with the crate's code.
    fn allows(&self, i: usize, j: usize, q_len: usize, k_len: usize) -> bool {
        let last_visible = i as i64 + k_len as i64 - q_len as i64;
        match self {
            MaskCase::None => true,
            MaskCase::Causal => (j as i64) <= last_visible,
            MaskCase::SlidingWindow(window) => (j as i64) <= last_visible && (j as i64) > last_visible - *window as i64,
            MaskCase::ValidKeys(valid) => valid[j],
            MaskCase::Allowed(allowed) => allowed[i * k_len + j],
        }
    }
}

/// One random attention call: shapes, values in `[-1, 1]`, mask, key block and heads.
#[derive(Debug, Clone)]
struct Case {
    q_len: usize,
    k_len: usize,
    n_heads: usize,
    n_kv_heads: usize,
    d: usize,
    d_v: usize,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    mask: MaskCase,
    key_block: usize,
}

fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-1.0..1.0_f64, len)
}

fn mask_case(q_len: usize, k_len: usize) -> impl Strategy<Value = MaskCase> {
    prop_oneof![
        Just(MaskCase::None),
        Just(MaskCase::Causal),
        (1..k_len + 3).prop_map(MaskCase::SlidingWindow),
        proptest::collection::vec(proptest::bool::weighted(0.8), k_len).prop_map(MaskCase::ValidKeys),
        proptest::collection::vec(proptest::bool::weighted(0.7), q_len * k_len).prop_map(MaskCase::Allowed),
    ]
}

/// Draws a case with `q_len, k_len < max_len`, head widths `1..max_d`, and one or more
/// heads sharing key/value heads.
fn case(max_len: usize, max_d: usize) -> impl Strategy<Value = Case> {
    (0..max_len, 0..max_len, 1..max_d, 1..max_d, prop_oneof![Just((1, 1)), Just((2, 1)), Just((4, 2)), Just((3, 3))])
        .prop_flat_map(|(q_len, k_len, d, d_v, (n_heads, n_kv_heads))| {
            (
                values(q_len * n_heads * d),
                values(k_len * n_kv_heads * d),
                values(k_len * n_kv_heads * d_v),
                mask_case(q_len, k_len),
                1..100_usize,
            )
                .prop_map(move |(q, k, v, mask, key_block)| Case {
                    q_len,
                    k_len,
                    n_heads,
                    n_kv_heads,
                    d,
                    d_v,
                    q,
                    k,
                    v,
                    mask,
                    key_block,
                })
        })
}

/// Returns the expected `q_len × n_heads·d_v` output, head by head, from the float64
/// reference on the values as `T` rounds them.
fn expected<T: Scalar>(c: &Case, scale: T) -> Mat {
    let round = |xs: &[f64]| xs.iter().map(|&x| T::from(x).unwrap().to_f64().unwrap()).collect::<Vec<_>>();
    let q = Mat::new(c.q_len, c.n_heads * c.d, round(&c.q));
    let k = Mat::new(c.k_len, c.n_kv_heads * c.d, round(&c.k));
    let v = Mat::new(c.k_len, c.n_kv_heads * c.d_v, round(&c.v));
    let group = c.n_heads / c.n_kv_heads;
    let width = c.n_heads * c.d_v;
    let mut out = vec![0.0; c.q_len * width];
    for h in 0..c.n_heads {
        let g = h / group;
        let (head_out, _) = attention(
            &q.columns(h * c.d, (h + 1) * c.d),
            &k.columns(g * c.d, (g + 1) * c.d),
            &v.columns(g * c.d_v, (g + 1) * c.d_v),
            scale.to_f64().unwrap(),
            |i, j| c.mask.allows(i, j, c.q_len, c.k_len),
        );
        for i in 0..c.q_len {
            out[i * width + h * c.d_v..][..c.d_v].copy_from_slice(head_out.row(i));
        }
    }
    Mat::new(c.q_len, width, out)
}

/// Runs the fused kernel on `isa` and checks every element against the reference within
/// `tol`, relative to the largest magnitude of V (which is at most 1).
fn check<T: Scalar>(c: &Case, isa: Isa, tol: f64) -> Result<(), TestCaseError> {
    let matrix =
        |rows, cols, xs: &[f64]| Matrix::from_vec(rows, cols, xs.iter().map(|&x| T::from(x).unwrap()).collect());
    let q = matrix(c.q_len, c.n_heads * c.d, &c.q).unwrap();
    let k = matrix(c.k_len, c.n_kv_heads * c.d, &c.k).unwrap();
    let v = matrix(c.k_len, c.n_kv_heads * c.d_v, &c.v).unwrap();
    let scale = T::one() / T::from(c.d).unwrap().sqrt();
    let options = FusedOptions { isa, key_block: NonZeroUsize::new(c.key_block), parallelism: Parallelism::Sequential };
    let mask = c.mask.mask(c.q_len, c.k_len);

    let got = attention_fused(q.view(), k.view(), v.view(), c.n_heads, c.n_kv_heads, &mask, scale, options).unwrap();
    let want = expected(c, scale);
    prop_assert_eq!(got.shape(), (want.rows, want.cols));
    for (index, (a, e)) in got.as_slice().iter().zip(&want.data).enumerate() {
        let a = a.to_f64().unwrap();
        prop_assert!(
            (a - e).abs() <= tol,
            "{:?}: element ({}, {}) is {:e}, expected {:e} (diff {:e} > {:e})",
            isa,
            index / want.cols,
            index % want.cols,
            a,
            e,
            (a - e).abs(),
            tol
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fused_f64_matches_reference(c in case(300, 131)) {
        for isa in Isa::supported() {
            check::<f64>(&c, isa, 1e-12)?;
        }
    }

    #[test]
    fn fused_f32_matches_reference(c in case(300, 131)) {
        for isa in Isa::supported() {
            check::<f32>(&c, isa, 1e-5)?;
        }
    }

    #[test]
    fn fused_small_shapes_match_reference(c in case(40, 20)) {
        // Small shapes hit the strip and tile edges far more often per case.
        for isa in Isa::supported() {
            check::<f64>(&c, isa, 1e-12)?;
            check::<f32>(&c, isa, 1e-5)?;
        }
    }
}
