//! The SIMD vector operations the fused kernel needs, for AVX2 and AVX-512F vectors of
//! `f32` and `f64`, so that one generic kernel body serves all four.

// Each method is an `unsafe fn` whose body is one or two intrinsic calls, and the trait's
// safety contract is their invariant, so the bodies carry no separate `unsafe` blocks.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use crate::exp;

/// One SIMD vector of `WIDTH` elements.
///
/// # Safety
///
/// Every method is `#[inline(always)]` and uses the intrinsics of one instruction set.
/// Callers must run inside a function compiled with that instruction set enabled
/// (`#[target_feature]`) on a CPU that supports it, and pointer arguments must be valid
/// for `WIDTH` elements.
pub(crate) unsafe trait Vector: Copy {
    type Elem: Copy;
    const WIDTH: usize;
    unsafe fn splat(x: Self::Elem) -> Self;
    unsafe fn load(ptr: *const Self::Elem) -> Self;
    unsafe fn store(self, ptr: *mut Self::Elem);
    /// Returns `a·b + c` with one rounding.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn sub(a: Self, b: Self) -> Self;
    unsafe fn mul(a: Self, b: Self) -> Self;
    /// Returns the lane-wise maximum, or the lane of `b` where either lane is NaN.
    unsafe fn max(a: Self, b: Self) -> Self;
    /// Returns `2^a` lane by lane.
    unsafe fn exp2(a: Self) -> Self;
    /// Returns `self` with every lane whose bit in `bits` is clear set to `−∞`.
    unsafe fn neg_inf_unless(self, bits: u64) -> Self;
    /// Returns `self` with every `−∞` lane set to `0`.
    unsafe fn zero_if_neg_inf(self) -> Self;
    /// Returns `a·b + c` in lanes whose bit in `bits` is set, and `c` elsewhere.
    unsafe fn fma_where(a: Self, b: Self, c: Self, bits: u64) -> Self;
}

/// Sixteen `f32` lanes of AVX-512F.
#[derive(Clone, Copy)]
pub(crate) struct F32x16(__m512);

/// Eight `f64` lanes of AVX-512F.
#[derive(Clone, Copy)]
pub(crate) struct F64x8(__m512d);

/// Eight `f32` lanes of AVX2 with FMA.
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

/// Four `f64` lanes of AVX2 with FMA.
#[derive(Clone, Copy)]
pub(crate) struct F64x4(__m256d);

// SAFETY: every method uses AVX-512F intrinsics only, as the trait requires its callers
// to enable.
unsafe impl Vector for F32x16 {
    type Elem = f32;
    const WIDTH: usize = 16;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Self(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        Self(_mm512_loadu_ps(ptr))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        _mm512_storeu_ps(ptr, self.0)
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Self(_mm512_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Self(_mm512_add_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        Self(_mm512_sub_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Self(_mm512_mul_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        Self(_mm512_max_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn exp2(a: Self) -> Self {
        Self(exp::avx512::exp2_ps(a.0))
    }
    #[inline(always)]
    unsafe fn neg_inf_unless(self, bits: u64) -> Self {
        Self(_mm512_mask_blend_ps(bits as __mmask16, _mm512_set1_ps(f32::NEG_INFINITY), self.0))
    }
    #[inline(always)]
    unsafe fn zero_if_neg_inf(self) -> Self {
        let is_neg_inf = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, _mm512_set1_ps(f32::NEG_INFINITY));
        Self(_mm512_mask_blend_ps(is_neg_inf, self.0, _mm512_setzero_ps()))
    }
    #[inline(always)]
    unsafe fn fma_where(a: Self, b: Self, c: Self, bits: u64) -> Self {
        Self(_mm512_mask3_fmadd_ps(a.0, b.0, c.0, bits as __mmask16))
    }
}

// SAFETY: every method uses AVX-512F intrinsics only, as the trait requires its callers
// to enable.
unsafe impl Vector for F64x8 {
    type Elem = f64;
    const WIDTH: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f64) -> Self {
        Self(_mm512_set1_pd(x))
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f64) -> Self {
        Self(_mm512_loadu_pd(ptr))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f64) {
        _mm512_storeu_pd(ptr, self.0)
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Self(_mm512_fmadd_pd(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Self(_mm512_add_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        Self(_mm512_sub_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Self(_mm512_mul_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        Self(_mm512_max_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn exp2(a: Self) -> Self {
        Self(exp::avx512::exp2_pd(a.0))
    }
    #[inline(always)]
    unsafe fn neg_inf_unless(self, bits: u64) -> Self {
        Self(_mm512_mask_blend_pd(bits as __mmask8, _mm512_set1_pd(f64::NEG_INFINITY), self.0))
    }
    #[inline(always)]
    unsafe fn zero_if_neg_inf(self) -> Self {
        let is_neg_inf = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(self.0, _mm512_set1_pd(f64::NEG_INFINITY));
        Self(_mm512_mask_blend_pd(is_neg_inf, self.0, _mm512_setzero_pd()))
    }
    #[inline(always)]
    unsafe fn fma_where(a: Self, b: Self, c: Self, bits: u64) -> Self {
        Self(_mm512_mask3_fmadd_pd(a.0, b.0, c.0, bits as __mmask8))
    }
}

/// Returns an AVX2 lane mask, all ones in lane `i` iff bit `i` of `bits` is set.
#[inline(always)]
unsafe fn lane_mask_8x32(bits: u64) -> __m256 {
    let lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let selected = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lane_bits);
    _mm256_castsi256_ps(_mm256_cmpeq_epi32(selected, lane_bits))
}

/// Returns an AVX2 lane mask, all ones in lane `i` iff bit `i` of `bits` is set.
#[inline(always)]
unsafe fn lane_mask_4x64(bits: u64) -> __m256d {
    let lane_bits = _mm256_setr_epi64x(1, 2, 4, 8);
    let selected = _mm256_and_si256(_mm256_set1_epi64x(bits as i64), lane_bits);
    _mm256_castsi256_pd(_mm256_cmpeq_epi64(selected, lane_bits))
}

// SAFETY: every method uses AVX2 and FMA intrinsics only, as the trait requires its
// callers to enable.
unsafe impl Vector for F32x8 {
    type Elem = f32;
    const WIDTH: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Self(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        Self(_mm256_loadu_ps(ptr))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        _mm256_storeu_ps(ptr, self.0)
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Self(_mm256_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Self(_mm256_add_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        Self(_mm256_sub_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Self(_mm256_mul_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        Self(_mm256_max_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn exp2(a: Self) -> Self {
        Self(exp::avx2::exp2_ps(a.0))
    }
    #[inline(always)]
    unsafe fn neg_inf_unless(self, bits: u64) -> Self {
        Self(_mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), self.0, lane_mask_8x32(bits)))
    }
    #[inline(always)]
    unsafe fn zero_if_neg_inf(self) -> Self {
        let is_neg_inf = _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, _mm256_set1_ps(f32::NEG_INFINITY));
        Self(_mm256_andnot_ps(is_neg_inf, self.0))
    }
    #[inline(always)]
    unsafe fn fma_where(a: Self, b: Self, c: Self, bits: u64) -> Self {
        Self(_mm256_blendv_ps(c.0, _mm256_fmadd_ps(a.0, b.0, c.0), lane_mask_8x32(bits)))
    }
}

// SAFETY: every method uses AVX2 and FMA intrinsics only, as the trait requires its
// callers to enable.
unsafe impl Vector for F64x4 {
    type Elem = f64;
    const WIDTH: usize = 4;

    #[inline(always)]
    unsafe fn splat(x: f64) -> Self {
        Self(_mm256_set1_pd(x))
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f64) -> Self {
        Self(_mm256_loadu_pd(ptr))
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f64) {
        _mm256_storeu_pd(ptr, self.0)
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Self(_mm256_fmadd_pd(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Self(_mm256_add_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        Self(_mm256_sub_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Self(_mm256_mul_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        Self(_mm256_max_pd(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn exp2(a: Self) -> Self {
        Self(exp::avx2::exp2_pd(a.0))
    }
    #[inline(always)]
    unsafe fn neg_inf_unless(self, bits: u64) -> Self {
        Self(_mm256_blendv_pd(_mm256_set1_pd(f64::NEG_INFINITY), self.0, lane_mask_4x64(bits)))
    }
    #[inline(always)]
    unsafe fn zero_if_neg_inf(self) -> Self {
        let is_neg_inf = _mm256_cmp_pd::<_CMP_EQ_OQ>(self.0, _mm256_set1_pd(f64::NEG_INFINITY));
        Self(_mm256_andnot_pd(is_neg_inf, self.0))
    }
    #[inline(always)]
    unsafe fn fma_where(a: Self, b: Self, c: Self, bits: u64) -> Self {
        Self(_mm256_blendv_pd(c.0, _mm256_fmadd_pd(a.0, b.0, c.0), lane_mask_4x64(bits)))
    }
}
