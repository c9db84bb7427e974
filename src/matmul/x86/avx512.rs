//! AVX-512F micro-kernels for `f32` and `f64`.

use std::arch::x86_64::{
    _mm512_fmadd_pd, _mm512_fmadd_ps, _mm512_loadu_pd, _mm512_loadu_ps, _mm512_set1_pd, _mm512_set1_ps,
    _mm512_setzero_pd, _mm512_setzero_ps, _mm512_storeu_pd, _mm512_storeu_ps,
};

/// Rows of the tile. Twelve rows of two vectors keep 24 accumulators in flight, enough
/// to cover the fused multiply-add latency on two pipes with registers to spare.
pub(super) const MR: usize = 6;
/// Columns of the `f32` tile: two 16-lane vectors.
pub(super) const NR_F32: usize = 64;
/// Columns of the `f64` tile: two 8-lane vectors.
pub(super) const NR_F64: usize = 32;

simd_tile! {
    #[target_feature(enable = "avx512f")]
    tile_f32: f32, mr = MR, nv = 4, lanes = 16,
    zero = _mm512_setzero_ps, splat = _mm512_set1_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    fma = _mm512_fmadd_ps,
}

simd_tile! {
    #[target_feature(enable = "avx512f")]
    tile_f64: f64, mr = MR, nv = 4, lanes = 8,
    zero = _mm512_setzero_pd, splat = _mm512_set1_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    fma = _mm512_fmadd_pd,
}
