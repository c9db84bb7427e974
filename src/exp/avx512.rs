//! `exp` on AVX-512F vectors of 16 `f32` or 8 `f64`, and over slices.
//!
//! `vscalefps`/`vscalefpd` apply the `2^k` factor, rounding subnormal results once and
//! overflowing to `+∞` as the hardware multiply would.

use std::arch::x86_64::*;

use super::{
    EXP_F32_MAX, EXP_F32_MIN, EXP_F32_POLY, EXP_F64_MAX, EXP_F64_MIN, EXP_F64_POLY, EXP2_F32_MAX, EXP2_F32_MIN,
    EXP2_F32_POLY, EXP2_F64_MAX, EXP2_F64_MIN, EXP2_F64_POLY, LN2_HI_F32, LN2_HI_F64, LN2_LO_F32, LN2_LO_F64,
};

/// Rounding mode for `roundscale`: to nearest, without raising exceptions.
const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// Returns `e^x` lane by lane.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp_ps(x: __m512) -> __m512 {
    // `max`/`min` return their second operand when either is NaN, so NaN lanes of `x`
    // pass through the clamp.
    let x = _mm512_max_ps(_mm512_set1_ps(EXP_F32_MIN), x);
    let x = _mm512_min_ps(_mm512_set1_ps(EXP_F32_MAX), x);

    let k = _mm512_roundscale_ps::<NEAREST>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_HI_F32), x);
    let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_LO_F32), r);

    _mm512_scalef_ps(horner_ps(&EXP_F32_POLY, r), k)
}

/// Returns `2^x` lane by lane.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp2_ps(x: __m512) -> __m512 {
    let x = _mm512_max_ps(_mm512_set1_ps(EXP2_F32_MIN), x);
    let x = _mm512_min_ps(_mm512_set1_ps(EXP2_F32_MAX), x);
    let k = _mm512_roundscale_ps::<NEAREST>(x);
    _mm512_scalef_ps(horner_ps(&EXP2_F32_POLY, _mm512_sub_ps(x, k)), k)
}

/// Evaluates the polynomial with coefficients `poly` (constant first) at `r`.
#[inline]
#[target_feature(enable = "avx512f")]
fn horner_ps(poly: &[f32], r: __m512) -> __m512 {
    let (last, rest) = poly.split_last().expect("the polynomial has coefficients");
    let mut p = _mm512_set1_ps(*last);
    for &c in rest.iter().rev() {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    p
}

/// Returns `e^x` lane by lane.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp_pd(x: __m512d) -> __m512d {
    let x = _mm512_max_pd(_mm512_set1_pd(EXP_F64_MIN), x);
    let x = _mm512_min_pd(_mm512_set1_pd(EXP_F64_MAX), x);

    let k = _mm512_roundscale_pd::<NEAREST>(_mm512_mul_pd(x, _mm512_set1_pd(std::f64::consts::LOG2_E)));
    let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_HI_F64), x);
    let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_LO_F64), r);

    _mm512_scalef_pd(horner_pd(&EXP_F64_POLY, r), k)
}

/// Returns `2^x` lane by lane.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp2_pd(x: __m512d) -> __m512d {
    let x = _mm512_max_pd(_mm512_set1_pd(EXP2_F64_MIN), x);
    let x = _mm512_min_pd(_mm512_set1_pd(EXP2_F64_MAX), x);
    let k = _mm512_roundscale_pd::<NEAREST>(x);
    _mm512_scalef_pd(horner_pd(&EXP2_F64_POLY, _mm512_sub_pd(x, k)), k)
}

/// Evaluates the polynomial with coefficients `poly` (constant first) at `r`.
#[inline]
#[target_feature(enable = "avx512f")]
fn horner_pd(poly: &[f64], r: __m512d) -> __m512d {
    let (last, rest) = poly.split_last().expect("the polynomial has coefficients");
    let mut p = _mm512_set1_pd(*last);
    for &c in rest.iter().rev() {
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
    }
    p
}

/// Replaces every `x` in `xs` with `exp(x)`.
pub(super) fn exp_slice_f32(xs: &mut [f32]) {
    assert!(is_x86_feature_detected!("avx512f"), "exp_slice_f32 needs AVX-512F");
    // SAFETY: AVX-512F is available, checked above.
    unsafe { exp_slice_f32_impl::<false>(xs) }
}

/// Replaces every `x` in `xs` with `2^x`.
pub(super) fn exp2_slice_f32(xs: &mut [f32]) {
    assert!(is_x86_feature_detected!("avx512f"), "exp2_slice_f32 needs AVX-512F");
    // SAFETY: AVX-512F is available, checked above.
    unsafe { exp_slice_f32_impl::<true>(xs) }
}

/// Replaces every `x` in `xs` with `exp(x)`.
pub(super) fn exp_slice_f64(xs: &mut [f64]) {
    assert!(is_x86_feature_detected!("avx512f"), "exp_slice_f64 needs AVX-512F");
    // SAFETY: AVX-512F is available, checked above.
    unsafe { exp_slice_f64_impl::<false>(xs) }
}

/// Replaces every `x` in `xs` with `2^x`.
pub(super) fn exp2_slice_f64(xs: &mut [f64]) {
    assert!(is_x86_feature_detected!("avx512f"), "exp2_slice_f64 needs AVX-512F");
    // SAFETY: AVX-512F is available, checked above.
    unsafe { exp_slice_f64_impl::<true>(xs) }
}

/// Maps `xs` through `2^x` when `BASE2`, otherwise through `exp(x)`.
#[target_feature(enable = "avx512f")]
fn exp_slice_f32_impl<const BASE2: bool>(xs: &mut [f32]) {
    let f = |x| if BASE2 { exp2_ps(x) } else { exp_ps(x) };
    let mut chunks = xs.chunks_exact_mut(16);
    for chunk in &mut chunks {
        // SAFETY: `chunk` contains exactly 16 `f32`, the width of one unaligned load/store.
        unsafe {
            let x = _mm512_loadu_ps(chunk.as_ptr());
            _mm512_storeu_ps(chunk.as_mut_ptr(), f(x));
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // The masked load and store touch only the `tail.len() < 16` lanes that exist.
        let mask: __mmask16 = (1 << tail.len()) - 1;
        // SAFETY: masked-off lanes are neither read nor written, so only `tail` is
        // accessed.
        unsafe {
            let x = _mm512_maskz_loadu_ps(mask, tail.as_ptr());
            _mm512_mask_storeu_ps(tail.as_mut_ptr(), mask, f(x));
        }
    }
}

/// Maps `xs` through `2^x` when `BASE2`, otherwise through `exp(x)`.
#[target_feature(enable = "avx512f")]
fn exp_slice_f64_impl<const BASE2: bool>(xs: &mut [f64]) {
    let f = |x| if BASE2 { exp2_pd(x) } else { exp_pd(x) };
    let mut chunks = xs.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // SAFETY: `chunk` contains exactly 8 `f64`, the width of one unaligned load/store.
        unsafe {
            let x = _mm512_loadu_pd(chunk.as_ptr());
            _mm512_storeu_pd(chunk.as_mut_ptr(), f(x));
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mask: __mmask8 = (1 << tail.len()) - 1;
        // SAFETY: masked-off lanes are neither read nor written, so only `tail` is
        // accessed.
        unsafe {
            let x = _mm512_maskz_loadu_pd(mask, tail.as_ptr());
            _mm512_mask_storeu_pd(tail.as_mut_ptr(), mask, f(x));
        }
    }
}
