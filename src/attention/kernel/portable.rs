//! The portable strip kernel: safe Rust for any [`Scalar`], with the lanes in the
//! innermost loops so that LLVM can vectorise them for the build target.

// The tile loops index several arrays by the same lane, key or column.
#![allow(clippy::needless_range_loop)]

use super::strip::{BlockInput, StripState};
use crate::scalar::Scalar;

/// Query rows per strip.
pub(crate) const LANES: usize = 8;

/// Processes one key block for one strip: scores, online-softmax update, then `P·V`.
pub(crate) fn process_block<T: Scalar>(input: &BlockInput<'_, T>, state: &mut StripState<'_, T>) {
    input.check(state, LANES);
    let BlockInput { d, d_v, scale, len, keys, key_stride, values, value_stride, lane_masks } = *input;
    let allowed = |j: usize, lane: usize| lane_masks.is_none_or(|m| m[j] >> lane & 1 == 1);
    let probs = &mut state.probs[..len * LANES];

    // Scores: s[j][lane] = scale · q_lane·k_j, −∞ where the row may not see key j.
    let mut block_max = [T::neg_infinity(); LANES];
    for (j, scores) in probs.chunks_exact_mut(LANES).enumerate() {
        let key = &keys[j * key_stride..][..d];
        let mut acc = [T::zero(); LANES];
        for (p, &k_p) in key.iter().enumerate() {
            let q_p = &state.qt[p * LANES..][..LANES];
            for lane in 0..LANES {
                acc[lane] = acc[lane] + q_p[lane] * k_p;
            }
        }
        for lane in 0..LANES {
            let s = if allowed(j, lane) { acc[lane] * scale } else { T::neg_infinity() };
            scores[lane] = s;
            if s > block_max[lane] {
                block_max[lane] = s;
            }
        }
    }

    // Online softmax: raise the running max, rescale the running sum, and turn the
    // scores into exp(s − max). A lane that has seen no key keeps max = −∞ and
    // subtracts 0 instead, so its masked scores give exp(−∞) = 0, not NaN.
    let mut alpha = [T::one(); LANES];
    let mut shift = [T::zero(); LANES];
    for lane in 0..LANES {
        let old = state.max[lane];
        let new = if block_max[lane] > old { block_max[lane] } else { old };
        shift[lane] = if new == T::neg_infinity() { T::zero() } else { new };
        alpha[lane] = old - shift[lane];
        state.max[lane] = new;
    }
    T::exp_in_place(&mut alpha);
    for scores in probs.chunks_exact_mut(LANES) {
        for lane in 0..LANES {
            scores[lane] = scores[lane] - shift[lane];
        }
    }
    T::exp_in_place(probs);
    for lane in 0..LANES {
        state.sum[lane] = state.sum[lane] * alpha[lane];
    }
    for p in probs.chunks_exact(LANES) {
        for lane in 0..LANES {
            state.sum[lane] = state.sum[lane] + p[lane];
        }
    }

    // O = alpha·O + Pᵀ·V, skipping masked (row, key) pairs so that a NaN in a masked
    // value cannot reach the output.
    let ot = &mut state.ot[..d_v * LANES];
    for o in ot.chunks_exact_mut(LANES) {
        for lane in 0..LANES {
            o[lane] = o[lane] * alpha[lane];
        }
    }
    for (j, p) in probs.chunks_exact(LANES).enumerate() {
        let value = &values[j * value_stride..][..d_v];
        for (o, &v_c) in ot.chunks_exact_mut(LANES).zip(value) {
            for lane in 0..LANES {
                if allowed(j, lane) {
                    o[lane] = o[lane] + p[lane] * v_c;
                }
            }
        }
    }
}
