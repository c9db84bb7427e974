//! The AVX2 and AVX-512F strip kernels: one generic body over [`Vector`], compiled once
//! per instruction set and element type.
//!
//! A strip is `NQ` vectors of query rows. Scores are computed `NJ` keys at a time into
//! `NJ × NQ` accumulators, each key element broadcast against `NQ` vectors of `Qᵀ`. The
//! output is accumulated `NC` value columns at a time the same way, with `P` in place of
//! `Qᵀ`. Every element is a chain of fused multiply-adds in a fixed order, so a row's
//! result does not depend on the other rows in its strip or on the tile edges.

// The tile loops index several arrays by the same lane, key or column.
#![allow(clippy::needless_range_loop)]

use num_traits::{Float, One, Zero};

use super::strip::{BlockInput, StripState};
use super::vector::{F32x8, F32x16, F64x4, F64x8, Vector};
use crate::isa::Isa;
use crate::scalar::Scalar;

/// Processes one key block for one strip of `NQ · V::WIDTH` lanes.
///
/// # Safety
///
/// The instruction set of `V` must be enabled in the caller and supported by the CPU,
/// and `input.check(state, NQ * V::WIDTH)` must have passed.
#[inline(always)]
unsafe fn process_block<V, const NQ: usize, const NJ: usize, const NC: usize>(
    input: &BlockInput<'_, V::Elem>,
    state: &mut StripState<'_, V::Elem>,
) where
    V: Vector,
    V::Elem: Scalar,
{
    let lanes = NQ * V::WIDTH;
    let BlockInput { d, d_v, scale, len, keys, key_stride, values, value_stride, lane_masks } = *input;
    if len == 0 {
        return;
    }
    let qt = state.qt.as_ptr();
    let probs = state.probs.as_mut_ptr();
    let ot = state.ot.as_mut_ptr();

    // SAFETY: for every block below, `check` guarantees that `qt` contains `d × lanes`
    // elements, `probs` `len × lanes`, `ot` `d_v × lanes`, `max` and `sum` `lanes`, that
    // key `j < len` has `d` elements from `keys[j * key_stride]` and value `j` has `d_v`
    // from `values[j * value_stride]`. Every index used stays within those bounds: tile
    // edges repeat the last key or column rather than read past it.
    unsafe {
        // Scores, NJ keys at a time: s[j] = scale · log2(e) · Qᵀ·k_j, −∞ in masked lanes.
        // The factor log2(e) puts the scores in base 2, so the softmax below computes
        // 2^(s − max), which needs no range-reduction multiplies, in place of exp.
        let scale_f64 = num_traits::cast::<V::Elem, f64>(scale).unwrap_or(f64::NAN);
        let scale = V::splat(num_traits::cast(scale_f64 * std::f64::consts::LOG2_E).unwrap_or(scale));
        let mut block_max = [V::splat(V::Elem::neg_infinity()); NQ];
        for j0 in (0..len).step_by(NJ) {
            let key_rows: [*const V::Elem; NJ] =
                std::array::from_fn(|jj| keys.as_ptr().add((j0 + jj).min(len - 1) * key_stride));
            let mut acc = [[V::splat(V::Elem::zero()); NQ]; NJ];
            for p in 0..d {
                let q: [V; NQ] = std::array::from_fn(|v| V::load(qt.add(p * lanes + v * V::WIDTH)));
                for jj in 0..NJ {
                    let k = V::splat(*key_rows[jj].add(p));
                    for v in 0..NQ {
                        acc[jj][v] = V::fma(q[v], k, acc[jj][v]);
                    }
                }
            }
            // A constant trip count keeps `acc` in registers. Keys past the block end are
            // the repeated last key, and the loop drops them.
            for jj in 0..NJ {
                let j = j0 + jj;
                if j >= len {
                    break;
                }
                for v in 0..NQ {
                    let mut s = V::mul(acc[jj][v], scale);
                    if let Some(masks) = lane_masks {
                        s = s.neg_inf_unless(masks[j] >> (v * V::WIDTH));
                    }
                    s.store(probs.add(j * lanes + v * V::WIDTH));
                    block_max[v] = V::max(block_max[v], s);
                }
            }
        }

        // Online softmax: raise the running max, rescale the running sum by
        // alpha = 2^(old max − new max), and turn scores into 2^(s − max). A lane that
        // has seen no key keeps max = −∞ and subtracts 0 instead, so its masked scores
        // give 2^(−∞) = 0, not NaN.
        let mut alpha = [V::splat(V::Elem::one()); NQ];
        for v in 0..NQ {
            let lane0 = v * V::WIDTH;
            let old = V::load(state.max.as_ptr().add(lane0));
            let new = V::max(old, block_max[v]);
            let shift = new.zero_if_neg_inf();
            alpha[v] = V::exp2(V::sub(old, shift));
            new.store(state.max.as_mut_ptr().add(lane0));

            let mut sum = V::mul(V::load(state.sum.as_ptr().add(lane0)), alpha[v]);
            for j in 0..len {
                let at = probs.add(j * lanes + lane0);
                let p = V::exp2(V::sub(V::load(at), shift));
                p.store(at);
                sum = V::add(sum, p);
            }
            sum.store(state.sum.as_mut_ptr().add(lane0));
        }

        // O = alpha·O + Pᵀ·V, NC value columns at a time. Masked (row, key) pairs are
        // skipped lane by lane, so a NaN in a masked value cannot reach the output.
        for c0 in (0..d_v).step_by(NC) {
            let cols: [usize; NC] = std::array::from_fn(|cc| (c0 + cc).min(d_v - 1));
            let mut acc: [[V; NQ]; NC] = std::array::from_fn(|cc| {
                std::array::from_fn(|v| V::mul(V::load(ot.add(cols[cc] * lanes + v * V::WIDTH)), alpha[v]))
            });
            match lane_masks {
                None => {
                    for j in 0..len {
                        let p: [V; NQ] = std::array::from_fn(|v| V::load(probs.add(j * lanes + v * V::WIDTH)));
                        let value = values.as_ptr().add(j * value_stride);
                        for cc in 0..NC {
                            let x = V::splat(*value.add(cols[cc]));
                            for v in 0..NQ {
                                acc[cc][v] = V::fma(p[v], x, acc[cc][v]);
                            }
                        }
                    }
                }
                Some(masks) => {
                    for j in 0..len {
                        let bits = masks[j];
                        if bits == 0 {
                            continue;
                        }
                        let p: [V; NQ] = std::array::from_fn(|v| V::load(probs.add(j * lanes + v * V::WIDTH)));
                        let value = values.as_ptr().add(j * value_stride);
                        for cc in 0..NC {
                            let x = V::splat(*value.add(cols[cc]));
                            for v in 0..NQ {
                                acc[cc][v] = V::fma_where(p[v], x, acc[cc][v], bits >> (v * V::WIDTH));
                            }
                        }
                    }
                }
            }
            for cc in 0..NC.min(d_v - c0) {
                for v in 0..NQ {
                    acc[cc][v].store(ot.add((c0 + cc) * lanes + v * V::WIDTH));
                }
            }
        }
    }
}

// Register tiles per kernel: `NQ` query vectors per strip, `NJ` keys per score tile and
// `NC` value columns per output tile. AVX-512F has 32 vector registers, AVX2 has 16. The
// narrow kernels take one query vector, for calls with few query rows.
const AVX512_F32_TILE: [usize; 3] = [2, 8, 8];
const AVX512_F32_NARROW_TILE: [usize; 3] = [1, 16, 16];
const AVX512_F64_TILE: [usize; 3] = [2, 8, 8];
const AVX512_F64_NARROW_TILE: [usize; 3] = [1, 16, 16];
const AVX2_F32_TILE: [usize; 3] = [2, 4, 4];
const AVX2_F32_NARROW_TILE: [usize; 3] = [1, 8, 8];
const AVX2_F64_TILE: [usize; 3] = [2, 4, 4];
const AVX2_F64_NARROW_TILE: [usize; 3] = [1, 8, 8];

/// Defines a safe entry point that checks the CPU and the slices, then runs
/// [`process_block`] with one vector type and tile, compiled for one instruction set.
macro_rules! entry_point {
    ($name:ident, $lanes:ident, $elem:ty, $vector:ty, $tile:ident, $isa:expr, $features:literal) => {
        /// Query rows per strip of this kernel.
        pub(crate) const $lanes: usize = $tile[0] * <$vector as Vector>::WIDTH;

        /// Processes one key block for one strip.
        pub(crate) fn $name(input: &BlockInput<'_, $elem>, state: &mut StripState<'_, $elem>) {
            assert!($isa.is_supported(), concat!(stringify!($name), " needs ", $features));
            input.check(state, $lanes);

            #[target_feature(enable = $features)]
            fn run(input: &BlockInput<'_, $elem>, state: &mut StripState<'_, $elem>) {
                // SAFETY: the instruction set is enabled here and was detected above, and
                // the slices passed `check` for this kernel's lanes.
                unsafe { process_block::<$vector, { $tile[0] }, { $tile[1] }, { $tile[2] }>(input, state) }
            }

            // SAFETY: the instruction set was detected above.
            unsafe { run(input, state) }
        }
    };
}

entry_point!(avx512_f32, AVX512_F32_LANES, f32, F32x16, AVX512_F32_TILE, Isa::Avx512, "avx512f");
entry_point!(avx512_f32_narrow, AVX512_F32_NARROW_LANES, f32, F32x16, AVX512_F32_NARROW_TILE, Isa::Avx512, "avx512f");
entry_point!(avx512_f64, AVX512_F64_LANES, f64, F64x8, AVX512_F64_TILE, Isa::Avx512, "avx512f");
entry_point!(avx512_f64_narrow, AVX512_F64_NARROW_LANES, f64, F64x8, AVX512_F64_NARROW_TILE, Isa::Avx512, "avx512f");
entry_point!(avx2_f32, AVX2_F32_LANES, f32, F32x8, AVX2_F32_TILE, Isa::Avx2, "avx2,fma");
entry_point!(avx2_f32_narrow, AVX2_F32_NARROW_LANES, f32, F32x8, AVX2_F32_NARROW_TILE, Isa::Avx2, "avx2,fma");
entry_point!(avx2_f64, AVX2_F64_LANES, f64, F64x4, AVX2_F64_TILE, Isa::Avx2, "avx2,fma");
entry_point!(avx2_f64_narrow, AVX2_F64_NARROW_LANES, f64, F64x4, AVX2_F64_NARROW_TILE, Isa::Avx2, "avx2,fma");
