//! AVX-512F micro-kernels for `f32` and `f64`.

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
    tile_f32: f32, mr = MR, nv = NR_F32 / 16, lanes = 16,
    zero = _mm512_setzero_ps, splat = _mm512_set1_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    fma = _mm512_fmadd_ps,
}

simd_tile! {
    #[target_feature(enable = "avx512f")]
    tile_f64: f64, mr = MR, nv = NR_F64 / 8, lanes = 8,
    zero = _mm512_setzero_pd, splat = _mm512_set1_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    fma = _mm512_fmadd_pd,
}
