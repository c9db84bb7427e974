//! AVX2 micro-kernels with FMA for `f32` and `f64`.

use super::gemm_small;
use crate::matrix::MatrixView;
use std::arch::x86_64::{
    _mm256_fmadd_pd, _mm256_fmadd_ps, _mm256_loadu_pd, _mm256_loadu_ps, _mm256_set1_pd, _mm256_set1_ps,
    _mm256_setzero_pd, _mm256_setzero_ps, _mm256_storeu_pd, _mm256_storeu_ps,
};

/// Rows of the tile. Six rows of two vectors keep 12 accumulators in the 16 registers,
/// leaving room for the two `B` vectors and one broadcast.
pub(super) const MR: usize = 6;
/// Columns of the `f32` tile: two 8-lane vectors.
pub(super) const NR_F32: usize = 16;
/// Columns of the `f64` tile: two 4-lane vectors.
pub(super) const NR_F64: usize = 8;

simd_tile! {
    #[target_feature(enable = "avx2,fma")]
    tile_f32: f32, nv = NR_F32 / 8, lanes = 8,
    zero = _mm256_setzero_ps, splat = _mm256_set1_ps, load = _mm256_loadu_ps, store = _mm256_storeu_ps,
    fma = _mm256_fmadd_ps,
}

simd_tile! {
    #[target_feature(enable = "avx2,fma")]
    tile_f64: f64, nv = NR_F64 / 4, lanes = 4,
    zero = _mm256_setzero_pd, splat = _mm256_set1_pd, load = _mm256_loadu_pd, store = _mm256_storeu_pd,
    fma = _mm256_fmadd_pd,
}

/// Computes a small `C = A·B` for `f32` with one fused multiply-add per term, as the
/// tile kernel does. The caller must have checked the CPU features.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn small_f32(a: MatrixView<'_, f32>, b: MatrixView<'_, f32>, c: &mut [f32], ldc: usize) {
    gemm_small(a, b, c, ldc, f32::mul_add);
}

/// Computes a small `C = A·B` for `f64` with one fused multiply-add per term, as the
/// tile kernel does. The caller must have checked the CPU features.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn small_f64(a: MatrixView<'_, f64>, b: MatrixView<'_, f64>, c: &mut [f64], ldc: usize) {
    gemm_small(a, b, c, ldc, f64::mul_add);
}
