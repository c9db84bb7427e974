//! The score kernel: scaled `Q·Kᵀ`, masked stable softmax, then the weighted sum of
//! the rows of `V`, for one head.

use crate::attention::mask::Mask;
use crate::error::Result;
use crate::matrix::{Matrix, MatrixView};
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// Query rows whose scores are computed together; the score buffer holds
/// `QUERY_BLOCK × k_len` elements.
const QUERY_BLOCK: usize = 64;

/// How the columns of Q, K and V split into heads.
///
/// Query head `h` owns columns `h·d_head .. (h+1)·d_head` of Q and reads key/value
/// head `h / (n_heads / n_kv_heads)`, which owns columns `g·d_head ..` of K and
/// `g·d_head_v ..` of V. With `n_kv_heads == n_heads` this is multi-head attention;
/// fewer key/value heads give grouped-query (or, with one, multi-query) attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadLayout {
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) d_head: usize,
    pub(crate) d_head_v: usize,
}

/// Computes every head of attention into `out` (`q_len × n_heads·d_head_v`,
/// row-major), head `h` into its own block of columns.
///
/// The caller has checked that `q` is `q_len × n_heads·d_head`, `k` is
/// `k_len × n_kv_heads·d_head`, `v` is `k_len × n_kv_heads·d_head_v`, that
/// `n_kv_heads` divides `n_heads`, and that `mask` fits `q_len × k_len`. When `weights`
/// is given, it receives one `q_len × k_len` matrix per query head.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_heads<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    layout: HeadLayout,
    mask: &Mask,
    scale: T,
    out: &mut Matrix<T>,
    mut weights: Option<&mut Vec<Matrix<T>>>,
    _parallelism: Parallelism,
) -> Result<()> {
    let (q_len, k_len) = (q.rows(), k.rows());
    let HeadLayout { n_heads, n_kv_heads, d_head, d_head_v } = layout;
    let group = n_heads / n_kv_heads;
    let width_v = out.cols();

    // Loop over query heads; each reads its key/value head through a column view.
    for h in 0..n_heads {
        let g = h / group;
        let q_h = q.columns(h * d_head..(h + 1) * d_head)?;
        let k_h = k.columns(g * d_head..(g + 1) * d_head)?;
        let v_h = v.columns(g * d_head_v..(g + 1) * d_head_v)?;

        let mut head_weights = if weights.is_some() { Some(Matrix::zeros(q_len, k_len)?) } else { None };
        let out_h = &mut out.as_mut_slice()[(h * d_head_v).min(q_len * width_v)..];
        attend(q_h, k_h, v_h, mask, scale, out_h, width_v, head_weights.as_mut().map(Matrix::as_mut_slice));

        if let (Some(all), Some(w)) = (weights.as_deref_mut(), head_weights) {
            all.push(w);
        }
    }
    Ok(())
}

/// Computes one head of attention into `out`.
///
/// `q` is `q_len × d_k`, `k` is `k_len × d_k`, `v` is `k_len × d_v`; the caller has
/// checked these shapes and that `mask` fits `q_len × k_len`. Output row `i` is
/// written to `out[i * out_stride..][..d_v]`. When `weights` is given, it receives
/// the `q_len × k_len` attention weights, row-major.
///
/// Masked keys are skipped, never multiplied by zero, so a NaN in a masked key or
/// value cannot reach the output. Each row is computed independently of the others.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    mask: &Mask,
    scale: T,
    out: &mut [T],
    out_stride: usize,
    mut weights: Option<&mut [T]>,
) {
    let (q_len, k_len, d_v) = (q.rows(), k.rows(), v.cols());
    if q_len == 0 || d_v == 0 && weights.is_none() {
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

            let out_row = &mut out[i * out_stride..i * out_stride + d_v];
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
