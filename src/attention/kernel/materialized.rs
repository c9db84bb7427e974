//! The materialised path: for a block of query rows, the full row of scores against every
//! key, a masked stable softmax over it, then the weighted sum of the rows of `V`. It is
//! the path that returns attention weights, and the baseline the fused path is tested and
//! benchmarked against.

use crate::attention::mask::Mask;
use crate::matrix::MatrixView;
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// Query rows whose scores are computed together; the score buffer holds
/// `QUERY_BLOCK × k_len` elements.
const QUERY_BLOCK: usize = 64;

/// Computes one head of attention with the scores of a block of rows materialised.
///
/// `q` is `q_len × d_k`, `k` is `k_len × d_k`, `v` is `k_len × d_v`; the caller has
/// checked these shapes and that `mask` fits `q_len × k_len`. When `out` is
/// `Some((out, out_stride))`, output row `i` is written to `out[i * out_stride..][..d_v]`.
/// When `weights` is given, it receives the `q_len × k_len` attention weights, row-major.
///
/// Masked keys are skipped, never multiplied by zero, so a NaN in a masked key or value
/// cannot reach the output.
pub(crate) fn attend<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    mask: &Mask,
    scale: T,
    mut out: Option<(&mut [T], usize)>,
    mut weights: Option<&mut [T]>,
) {
    let (q_len, k_len, d_v) = (q.rows(), k.rows(), v.cols());
    if q_len == 0 {
        return;
    }

    let mut scores = vec![T::zero(); QUERY_BLOCK.min(q_len) * k_len];
    let k_t = k.t();

    // Loop over blocks of query rows; each block's scores are one product Q_b·Kᵀ.
    for block_start in (0..q_len).step_by(QUERY_BLOCK) {
        let block_len = QUERY_BLOCK.min(q_len - block_start);
        let q_block = q.row_range(block_start..block_start + block_len).expect("block lies within the query rows");
        let block_scores = &mut scores[..block_len * k_len];
        T::gemm(q_block, k_t, block_scores, k_len, Parallelism::Sequential);

        // Loop over the rows of the block: mask, softmax, then the weighted sum of V.
        for r in 0..block_len {
            let i = block_start + r;
            let row = &mut block_scores[r * k_len..(r + 1) * k_len];
            masked_softmax(row, scale, |j| mask.allows(i, j, q_len, k_len));

            if let Some((out, out_stride)) = out.as_mut() {
                let out_row = &mut out[i * *out_stride..i * *out_stride + d_v];
                out_row.fill(T::zero());
                for j in mask.key_range(i, q_len, k_len) {
                    let w = row[j];
                    if !mask.allows(i, j, q_len, k_len) {
                        continue;
                    }
                    for (c, o) in out_row.iter_mut().enumerate() {
                        *o = *o + w * v.at(j, c);
                    }
                }
            }

            if let Some(weights) = weights.as_deref_mut() {
                weights[i * k_len..(i + 1) * k_len].copy_from_slice(row);
            }
        }
    }
}

/// Replaces raw scores with softmax weights of `scale · score` over the keys for which
/// `allowed(j)` holds, and sets every other weight to exactly `0`.
///
/// A row with no allowed key becomes all zeros. An allowed score that is NaN or `+∞`
/// after scaling makes the whole row NaN.
fn masked_softmax<T: Scalar>(row: &mut [T], scale: T, allowed: impl Fn(usize) -> bool) {
    let mut max = T::neg_infinity();
    let mut any_allowed = false;
    for (j, s) in row.iter_mut().enumerate() {
        if allowed(j) {
            *s = *s * scale;
            any_allowed = true;
            if s.is_nan() || *s > max {
                max = if max.is_nan() { max } else { *s };
            }
        }
    }
    if !any_allowed {
        row.fill(T::zero());
        return;
    }
    if max.is_nan() || max == T::infinity() {
        row.fill(T::nan());
        return;
    }

    // Every allowed score is now finite or −∞, so exp(s − max) lies in [0, 1] and the
    // sum is at least 1 unless max itself is −∞.
    let mut sum = T::zero();
    for (j, s) in row.iter_mut().enumerate() {
        if allowed(j) {
            *s = if max == T::neg_infinity() { T::zero() } else { (*s - max).exp() };
            sum = sum + *s;
        } else {
            *s = T::zero();
        }
    }
    if sum == T::zero() {
        return;
    }
    for (j, s) in row.iter_mut().enumerate() {
        if allowed(j) {
            *s = *s / sum;
        }
    }
}
