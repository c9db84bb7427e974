//! The micro-kernel interface: one `MR × NR` register tile of `C` per call, over
//! packed panels of `A` and `B`, with the block sizes the driver tiles the caches by.

use crate::matrix::MatrixView;
use crate::scalar::Scalar;

/// A packed micro-panel of `A`: element `(i, p)` is `data[i·row_stride + p·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct APanel<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

/// A micro-panel of `B` whose rows are contiguous: element `(p, j)` is
/// `data[p·row_stride + j]`. A packed panel has `row_stride == NR`; a panel read in
/// place has the row stride of `B`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BPanel<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) row_stride: usize,
}

/// A register-blocked micro-kernel and the cache blocking that suits it.
///
/// The driver packs `A` into micro-panels of `MR` rows (with the strides an
/// [`APanel`] carries), and `B` into micro-panels of `NR` columns stored row by row
/// (`NR` values for each `p`), both zero-padded to whole panels. Full panels of a
/// row-major operand may instead be read where they lie. A kernel then adds
/// `A_panel · B_panel` to an `MR × NR` tile, one rank-1 update per `p`, in increasing
/// `p`, so every element of `C` is one running sum whose order depends on `k` alone.
pub(crate) trait MicroKernel<T: Scalar>: Copy + Send + Sync {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Depth of one block along `k`: each tile of `C` is loaded and stored once per
    /// `KC` steps.
    const KC: usize;
    /// Rows of a packed `A` in one row block, which shares each packed block of `B`.
    /// A row-major `A`, read in place, forms a single block.
    const MC: usize;
    /// Columns of `B` packed at once, as a `KC × NC` block that the kernel reads
    /// from L2 and L3.
    const NC: usize;

    /// Computes one tile: `acc = A_panel · B_panel` over `k` steps, plus the current
    /// contents of the tile when `accumulate` is set, then stores its top-left
    /// `rows × cols` corner into `c` with row stride `ldc`.
    ///
    /// `a` is the `MR × k` panel, `b` the `k × NR` panel, and `c` the
    /// `rows × cols` corner starting at `c[0]`; `1 <= rows <= MR`, `1 <= cols <= NR`.
    /// Without `accumulate` the tile starts from zero and `c` is only written, so it
    /// may hold anything, NaN included. Implementations panic when a slice is too
    /// short, which only a bug in the driver can cause.
    #[allow(clippy::too_many_arguments)]
    fn tile(
        self,
        k: usize,
        a: APanel<'_, T>,
        b: BPanel<'_, T>,
        c: &mut [T],
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    );

    /// Computes a small `C = A·B` without packing, with the per-term arithmetic of
    /// [`MicroKernel::tile`], so that every element gets the bits the packed path
    /// would give it. `c` has `(m - 1)·ldc + n` elements or more.
    fn gemm_small(self, a: MatrixView<'_, T>, b: MatrixView<'_, T>, c: &mut [T], ldc: usize);
}

/// Panics unless the slices of a [`MicroKernel::tile`] call are long enough.
///
/// The SIMD kernels read and write through raw pointers, so this check is what makes
/// them sound.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn check_tile<T>(
    mr: usize,
    nr: usize,
    k: usize,
    a: APanel<'_, T>,
    b: BPanel<'_, T>,
    c: &[T],
    ldc: usize,
    rows: usize,
    cols: usize,
) {
    assert!((1..=mr).contains(&rows), "tile rows {rows} not in 1..={mr}");
    assert!((1..=nr).contains(&cols), "tile columns {cols} not in 1..={nr}");
    let a_end = (mr - 1) * a.row_stride + k.saturating_sub(1) * a.col_stride;
    assert!(k == 0 || a.data.len() > a_end, "packed A panel shorter than k = {k}");
    let b_end = k.saturating_sub(1) * b.row_stride + nr;
    assert!(k == 0 || b.data.len() >= b_end, "B panel shorter than k = {k}");
    assert!(cols <= ldc, "tile columns {cols} exceed the row stride {ldc} of C");
    assert!(c.len() >= (rows - 1) * ldc + cols, "C tile of {rows} × {cols} past the end of C");
}
