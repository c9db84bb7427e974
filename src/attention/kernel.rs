//! The score kernel: scaled `Q·Kᵀ`, masked stable softmax, then the weighted sum of the
//! rows of `V`.
//!
//! Two paths compute it. The fused path (`fused`) never stores more than one block of
//! scores per thread and is the default. The materialised path (`materialized`) builds
//! whole rows of weights. It runs when the caller asks for the weights, and it is the
//! baseline in tests and benchmarks.

mod fused;
mod materialized;
mod portable;
#[cfg(target_arch = "x86_64")]
mod simd;
mod strip;
#[cfg(target_arch = "x86_64")]
mod vector;

use std::num::NonZeroUsize;

pub use strip::StripKernel;

use crate::attention::check_shapes;
use crate::attention::mask::Mask;
use crate::error::{Error, Result};
use crate::isa::Isa;
use crate::matrix::{Matrix, MatrixView};
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// The split of the columns of Q, K and V into heads.
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
/// row-major), head `h` into its own block of columns, on the fused path.
///
/// The caller has checked that `q` is `q_len × n_heads·d_head`, `k` is
/// `k_len × n_kv_heads·d_head`, `v` is `k_len × n_kv_heads·d_head_v`, that
/// `n_kv_heads` divides `n_heads`, and that `mask` fits `q_len × k_len`. When `weights`
/// is given, it receives one `q_len × k_len` matrix per query head, computed on the
/// materialised path. The output still comes from the fused path, so it does not depend
/// on whether weights were requested.
///
/// # Errors
///
/// [`Error::ShapeOverflow`] when `q_len · k_len` overflows `usize` for the weights.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_heads<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    layout: HeadLayout,
    mask: &Mask,
    scale: T,
    out: &mut Matrix<T>,
    weights: Option<&mut Vec<Matrix<T>>>,
    parallelism: Parallelism,
) -> Result<()> {
    if let Some(all) = weights {
        let HeadLayout { n_heads, n_kv_heads, d_head, d_head_v } = layout;
        let group = n_heads / n_kv_heads;
        for h in 0..n_heads {
            let g = h / group;
            let q_h = q.columns(h * d_head..(h + 1) * d_head)?;
            let k_h = k.columns(g * d_head..(g + 1) * d_head)?;
            let v_h = v.columns(g * d_head_v..(g + 1) * d_head_v)?;
            let mut w = Matrix::zeros(q.rows(), k.rows())?;
            materialized::attend(q_h, k_h, v_h, mask, scale, None, Some(w.as_mut_slice()));
            all.push(w);
        }
    }

    let kernel = T::strip_kernel(Isa::detected()).for_rows(q.rows());
    let task = fused::Task { q, k, v, layout, mask, scale, kernel, key_block: kernel.key_block() };
    let out_stride = out.cols();
    fused::run(&task, out.as_mut_slice(), out_stride, parallelism);
    Ok(())
}

/// Computes one head of attention into `out`, on the fused path.
///
/// `q` is `q_len × d_k`, `k` is `k_len × d_k`, `v` is `k_len × d_v`; the caller has
/// checked these shapes and that `mask` fits `q_len × k_len`. Output row `i` is
/// written to `out[i * out_stride..][..d_v]`. When `weights` is given, it receives
/// the `q_len × k_len` attention weights, row-major, from the materialised path.
///
/// Masked keys are skipped, never multiplied by zero, so a NaN in a masked key or
/// value cannot reach the output. Each row is computed independently of the others,
/// and the work is spread over threads as [`Parallelism::Auto`] allows.
// NOTE: this signature carries no `Parallelism`, so the callers that return weights
// run with `Parallelism::Auto` whatever the layer's setting; `attend_heads` takes one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    mask: &Mask,
    scale: T,
    out: &mut [T],
    out_stride: usize,
    weights: Option<&mut [T]>,
) {
    if let Some(weights) = weights {
        materialized::attend(q, k, v, mask, scale, None, Some(weights));
    }

    let layout = HeadLayout { n_heads: 1, n_kv_heads: 1, d_head: q.cols(), d_head_v: v.cols() };
    let kernel = T::strip_kernel(Isa::detected()).for_rows(q.rows());
    let task = fused::Task { q, k, v, layout, mask, scale, kernel, key_block: kernel.key_block() };
    fused::run(&task, out, out_stride, Parallelism::Auto);
}

/// Settings of [`attention_fused`]: the instruction set, the key block and the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedOptions {
    /// Instruction set of the kernel. One that the CPU lacks falls back to
    /// [`Isa::Portable`].
    pub isa: Isa,
    /// Keys per block, or `None` for the kernel's default.
    pub key_block: Option<NonZeroUsize>,
    /// Threads to spread (head, strip) items over.
    pub parallelism: Parallelism,
}

impl Default for FusedOptions {
    fn default() -> Self {
        Self { isa: Isa::detected(), key_block: None, parallelism: Parallelism::Auto }
    }
}

/// Computes multi-head attention on the fused path with explicit kernel settings.
///
/// `q` is `q_len × n_heads·d_head`, `k` is `k_len × n_kv_heads·d_head` and `v` is
/// `k_len × n_kv_heads·d_head_v`; query head `h` reads key/value head
/// `h / (n_heads / n_kv_heads)`. Returns `q_len × n_heads·d_head_v`. Unlike the public
/// functions, `scale` is used as given, with no default and no check.
///
/// # Errors
///
/// [`Error::ZeroHeads`] for zero heads, [`Error::HeadsDivide`] when a width or the head
/// count does not divide, [`Error::QueryKeyWidth`], [`Error::ZeroKeyWidth`],
/// [`Error::KeyValueRows`] and the errors of [`Mask::check`].
///
/// ```
/// use qkv::kernels::{FusedOptions, attention_fused, attention_materialized};
/// use qkv::{Mask, Matrix};
///
/// let q = Matrix::from_fn(5, 4, |i, j| (i as f64 - j as f64).sin())?;
/// let k = Matrix::from_fn(7, 4, |i, j| (i * j) as f64 / 10.0)?;
/// let v = Matrix::from_fn(7, 3, |i, j| (i + j) as f64)?;
/// let fused = attention_fused(q.view(), k.view(), v.view(), 1, 1, &Mask::Causal, 0.5, FusedOptions::default())?;
/// let (reference, _) = attention_materialized(q.view(), k.view(), v.view(), &Mask::Causal, 0.5)?;
/// for (a, b) in fused.as_slice().iter().zip(reference.as_slice()) {
///     assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0));
/// }
/// # Ok::<(), qkv::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn attention_fused<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    n_heads: usize,
    n_kv_heads: usize,
    mask: &Mask,
    scale: T,
    options: FusedOptions,
) -> Result<Matrix<T>> {
    if n_heads == 0 || n_kv_heads == 0 {
        return Err(Error::ZeroHeads);
    }
    if !n_heads.is_multiple_of(n_kv_heads) {
        return Err(Error::HeadsDivide { what: "query head count", width: n_heads, heads: n_kv_heads });
    }
    for (what, width, heads) in
        [("query", q.cols(), n_heads), ("key", k.cols(), n_kv_heads), ("value", v.cols(), n_kv_heads)]
    {
        if !width.is_multiple_of(heads) {
            return Err(Error::HeadsDivide { what, width, heads });
        }
    }
    let layout = HeadLayout { n_heads, n_kv_heads, d_head: q.cols() / n_heads, d_head_v: v.cols() / n_kv_heads };
    if layout.d_head != k.cols() / n_kv_heads {
        return Err(Error::QueryKeyWidth { query: layout.d_head, key: k.cols() / n_kv_heads });
    }
    if layout.d_head == 0 {
        return Err(Error::ZeroKeyWidth);
    }
    if k.rows() != v.rows() {
        return Err(Error::KeyValueRows { keys: k.rows(), values: v.rows() });
    }
    mask.check(q.rows(), k.rows())?;

    let kernel = T::strip_kernel(options.isa).for_rows(q.rows());
    let key_block = options.key_block.map_or(kernel.key_block(), NonZeroUsize::get);
    let task = fused::Task { q, k, v, layout, mask, scale, kernel, key_block };
    let mut out = Matrix::zeros(q.rows(), n_heads * layout.d_head_v)?;
    let out_stride = out.cols();
    fused::run(&task, out.as_mut_slice(), out_stride, options.parallelism);
    Ok(out)
}

/// Computes one head of attention on the materialised path and returns the output
/// (`q_len × d_v`) and the weights (`q_len × k_len`).
///
/// `scale` is used as given, with no default and no check.
///
/// # Errors
///
/// [`Error::QueryKeyWidth`], [`Error::ZeroKeyWidth`], [`Error::KeyValueRows`], the errors
/// of [`Mask::check`], and [`Error::ShapeOverflow`] when `q_len · k_len` overflows.
pub fn attention_materialized<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    mask: &Mask,
    scale: T,
) -> Result<(Matrix<T>, Matrix<T>)> {
    check_shapes(q, k, v, mask)?;

    let mut out = Matrix::zeros(q.rows(), v.cols())?;
    let mut weights = Matrix::zeros(q.rows(), k.rows())?;
    let out_stride = out.cols();
    materialized::attend(q, k, v, mask, scale, Some((out.as_mut_slice(), out_stride)), Some(weights.as_mut_slice()));
    Ok((out, weights))
}
