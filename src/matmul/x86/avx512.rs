//! AVX-512F micro-kernels for `f32` and `f64`.

use super::gemm_small;
use crate::matrix::MatrixView;
use std::arch::x86_64::{
    _mm512_fmadd_pd, _mm512_fmadd_ps, _mm512_loadu_pd, _mm512_loadu_ps, _mm512_set1_pd, _mm512_set1_ps,
    _mm512_setzero_pd, _mm512_setzero_ps, _mm512_storeu_pd, _mm512_storeu_ps,
};

/// Rows of the tile. Six rows of four vectors keep 24 accumulators in flight, and each
/// broadcast of `A` feeds four fused multiply-adds. On Zen 4 this beat 12 rows of two
/// vectors, which needs twice the broadcasts for the same work.
pub(super) const MR: usize = 6;
/// Columns of the `f32` tile: four 16-lane vectors, one attention head of width 64.
pub(super) const NR_F32: usize = 64;
/// Columns of the `f64` tile: four 8-lane vectors.
pub(super) const NR_F64: usize = 32;

simd_tile! {
    #[target_feature(enable = "avx512f")]
    tile_f32: f32, nv = NR_F32 / 16, lanes = 16,
    zero = _mm512_setzero_ps, splat = _mm512_set1_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    fma = _mm512_fmadd_ps,
}

simd_tile! {
    #[target_feature(enable = "avx512f")]
    tile_f64: f64, nv = NR_F64 / 8, lanes = 8,
    zero = _mm512_setzero_pd, splat = _mm512_set1_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    fma = _mm512_fmadd_pd,
}

/// Computes a small `C = A·B` for `f32` with one fused multiply-add per term, as the
/// tile kernel does. The caller must have checked the CPU features.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn small_f32(a: MatrixView<'_, f32>, b: MatrixView<'_, f32>, c: &mut [f32], ldc: usize) {
    gemm_small(a, b, c, ldc, f32::mul_add);
}

/// Computes a small `C = A·B` for `f64` with one fused multiply-add per term, as the
/// tile kernel does. The caller must have checked the CPU features.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn small_f64(a: MatrixView<'_, f64>, b: MatrixView<'_, f64>, c: &mut [f64], ldc: usize) {
    gemm_small(a, b, c, ldc, f64::mul_add);
}
