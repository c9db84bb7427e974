//! `exp` on AVX2+FMA vectors of 8 `f32` or 4 `f64`, and over slices.
//!
//! AVX2 has no `scalef`, so `2^k` is built from exponent bits in two factors that are
//! each a normal number. Results in the subnormal range are then rounded once, by the
//! last multiply.

use std::arch::x86_64::*;

use crate::isa::Isa;

use super::{
    EXP_F32_MAX, EXP_F32_MIN, EXP_F32_POLY, EXP_F64_MAX, EXP_F64_MIN, EXP_F64_POLY, EXP2_F32_MAX, EXP2_F32_MIN,
    EXP2_F32_POLY, EXP2_F64_MAX, EXP2_F64_MIN, EXP2_F64_POLY, LN2_HI_F32, LN2_HI_F64, LN2_LO_F32, LN2_LO_F64,
};

/// Rounding mode for `round`: to nearest, without raising exceptions.
const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// Returns `e^x` lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp_ps(x: __m256) -> __m256 {
    // `max`/`min` return their second operand when either is NaN, so NaN lanes of `x`
    // pass through the clamp.
    let x = _mm256_max_ps(_mm256_set1_ps(EXP_F32_MIN), x);
    let x = _mm256_min_ps(_mm256_set1_ps(EXP_F32_MAX), x);

    let k = _mm256_round_ps::<NEAREST>(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI_F32), x);
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO_F32), r);

    scale_ps(horner_ps(&EXP_F32_POLY, r), k)
}

/// Returns `2^x` lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp2_ps(x: __m256) -> __m256 {
    let x = _mm256_max_ps(_mm256_set1_ps(EXP2_F32_MIN), x);
    let x = _mm256_min_ps(_mm256_set1_ps(EXP2_F32_MAX), x);
    let k = _mm256_round_ps::<NEAREST>(x);
    scale_ps(horner_ps(&EXP2_F32_POLY, _mm256_sub_ps(x, k)), k)
}

/// Evaluates the polynomial with coefficients `poly` (constant first) at `r`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horner_ps(poly: &[f32], r: __m256) -> __m256 {
    let (last, rest) = poly.split_last().expect("the polynomial has coefficients");
    let mut p = _mm256_set1_ps(*last);
    for &c in rest.iter().rev() {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    p
}

/// Returns `p · 2^k` for integral `k` in `-151..=129`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scale_ps(p: __m256, k: __m256) -> __m256 {
    // NaN lanes of k give garbage factors, and NaN times any factor stays NaN.
    let k = _mm256_cvtps_epi32(k);
    let half = _mm256_srai_epi32::<1>(k);
    let pow2 = |e: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(e, _mm256_set1_epi32(127))));
    _mm256_mul_ps(_mm256_mul_ps(p, pow2(half)), pow2(_mm256_sub_epi32(k, half)))
}

/// Returns `e^x` lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp_pd(x: __m256d) -> __m256d {
    let x = _mm256_max_pd(_mm256_set1_pd(EXP_F64_MIN), x);
    let x = _mm256_min_pd(_mm256_set1_pd(EXP_F64_MAX), x);

    let k = _mm256_round_pd::<NEAREST>(_mm256_mul_pd(x, _mm256_set1_pd(std::f64::consts::LOG2_E)));
    let r = _mm256_fnmadd_pd(k, _mm256_set1_pd(LN2_HI_F64), x);
    let r = _mm256_fnmadd_pd(k, _mm256_set1_pd(LN2_LO_F64), r);

    scale_pd(horner_pd(&EXP_F64_POLY, r), k)
}

/// Returns `2^x` lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp2_pd(x: __m256d) -> __m256d {
    let x = _mm256_max_pd(_mm256_set1_pd(EXP2_F64_MIN), x);
    let x = _mm256_min_pd(_mm256_set1_pd(EXP2_F64_MAX), x);
    let k = _mm256_round_pd::<NEAREST>(x);
    scale_pd(horner_pd(&EXP2_F64_POLY, _mm256_sub_pd(x, k)), k)
}

/// Evaluates the polynomial with coefficients `poly` (constant first) at `r`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horner_pd(poly: &[f64], r: __m256d) -> __m256d {
    let (last, rest) = poly.split_last().expect("the polynomial has coefficients");
    let mut p = _mm256_set1_pd(*last);
    for &c in rest.iter().rev() {
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c));
    }
    p
}

/// Returns `p · 2^k` for integral `k` in `-1076..=1025`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scale_pd(p: __m256d, k: __m256d) -> __m256d {
    let k = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
    // An arithmetic shift right by one: AVX2 has no 64-bit `srai`, so shift the sign in
    // by hand.
    let sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), k);
    let half = _mm256_or_si256(_mm256_srli_epi64::<1>(k), _mm256_slli_epi64::<63>(sign));
    let pow2 = |e: __m256i| _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_add_epi64(e, _mm256_set1_epi64x(1023))));
    _mm256_mul_pd(_mm256_mul_pd(p, pow2(half)), pow2(_mm256_sub_epi64(k, half)))
}

/// Replaces every `x` in `xs` with `exp(x)`.
pub(super) fn exp_slice_f32(xs: &mut [f32]) {
    assert!(Isa::Avx2.is_supported(), "exp_slice_f32 needs AVX2 and FMA");
    // SAFETY: AVX2 and FMA are available, checked above.
    unsafe { exp_slice_f32_impl::<false>(xs) }
}

/// Replaces every `x` in `xs` with `2^x`.
pub(super) fn exp2_slice_f32(xs: &mut [f32]) {
    assert!(Isa::Avx2.is_supported(), "exp2_slice_f32 needs AVX2 and FMA");
    // SAFETY: AVX2 and FMA are available, checked above.
    unsafe { exp_slice_f32_impl::<true>(xs) }
}

/// Replaces every `x` in `xs` with `exp(x)`.
pub(super) fn exp_slice_f64(xs: &mut [f64]) {
    assert!(Isa::Avx2.is_supported(), "exp_slice_f64 needs AVX2 and FMA");
    // SAFETY: AVX2 and FMA are available, checked above.
    unsafe { exp_slice_f64_impl::<false>(xs) }
}

/// Replaces every `x` in `xs` with `2^x`.
pub(super) fn exp2_slice_f64(xs: &mut [f64]) {
    assert!(Isa::Avx2.is_supported(), "exp2_slice_f64 needs AVX2 and FMA");
    // SAFETY: AVX2 and FMA are available, checked above.
    unsafe { exp_slice_f64_impl::<true>(xs) }
}

/// Maps `xs` through `2^x` when `BASE2`, otherwise through `exp(x)`.
#[target_feature(enable = "avx2,fma")]
fn exp_slice_f32_impl<const BASE2: bool>(xs: &mut [f32]) {
    let f = |x| if BASE2 { exp2_ps(x) } else { exp_ps(x) };
    let mut chunks = xs.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // SAFETY: `chunk` contains exactly 8 `f32`, the width of one unaligned load/store.
        unsafe {
            let x = _mm256_loadu_ps(chunk.as_ptr());
            _mm256_storeu_ps(chunk.as_mut_ptr(), f(x));
        }
    }
    // The tail goes through a zero-padded buffer. `f` is lane-wise, so padding
    // lanes do not change the others.
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0.0_f32; 8];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` contains exactly 8 `f32`.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr()))) };
        tail.copy_from_slice(&buf[..tail.len()]);
    }
}

/// Maps `xs` through `2^x` when `BASE2`, otherwise through `exp(x)`.
#[target_feature(enable = "avx2,fma")]
fn exp_slice_f64_impl<const BASE2: bool>(xs: &mut [f64]) {
    let f = |x| if BASE2 { exp2_pd(x) } else { exp_pd(x) };
    let mut chunks = xs.chunks_exact_mut(4);
    for chunk in &mut chunks {
        // SAFETY: `chunk` contains exactly 4 `f64`, the width of one unaligned load/store.
        unsafe {
            let x = _mm256_loadu_pd(chunk.as_ptr());
            _mm256_storeu_pd(chunk.as_mut_ptr(), f(x));
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [0.0_f64; 4];
        buf[..tail.len()].copy_from_slice(tail);
        // SAFETY: `buf` contains exactly 4 `f64`.
        unsafe { _mm256_storeu_pd(buf.as_mut_ptr(), f(_mm256_loadu_pd(buf.as_ptr()))) };
        tail.copy_from_slice(&buf[..tail.len()]);
    }
}
