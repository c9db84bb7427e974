//! The path for small products, which skips packing and tiles and so beats the packed
//! path below a few thousand multiply-adds.
//!
//! It must give the bits of the packed path, so that an element of `C` never depends
//! on the size of the product it belongs to. It does, because both compute each element
//! as one running sum from zero over `p = 0..k` in increasing order, with the same
//! per-term arithmetic: the kernel's `term`. The packed path stores its partial sum
//! after each `KC` block and reloads it exactly, which does not change the sum.

use crate::matrix::MatrixView;
use crate::scalar::Scalar;

/// Largest `m·n·k` for which [`gemm_small`] runs instead of the packed path. On Zen 4
/// the two paths took the same time at 16 × 16 × 16, and at 32 × 32 × 32 the packed
/// path took half the time.
pub(crate) const SMALL_MAX_WORK: usize = 16 * 16 * 16;

/// Rows of `C` computed together, for independent chains of multiply-adds.
const ROWS: usize = 4;
/// Columns of `C` computed together: one 512-bit vector of `f32`.
const COLS: usize = 16;

/// Computes `C = A·B` (`m × k` times `k × n`) into row-major `C` with row stride `ldc`,
/// where `term(a, b, acc)` adds one product `a·b` to the running sum `acc`.
///
/// Inlined into its callers, so that `term` compiles with their target features.
#[inline(always)]
pub(crate) fn gemm_small<T: Scalar>(
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    c: &mut [T],
    ldc: usize,
    term: impl Fn(T, T, T) -> T,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());

    for i0 in (0..m).step_by(ROWS) {
        let rows = ROWS.min(m - i0);
        for j0 in (0..n).step_by(COLS) {
            let cols = COLS.min(n - j0);
            let mut acc = [[T::zero(); COLS]; ROWS];

            // One rank-1 update per p, in increasing p. The padding lanes multiply zeros.
            for p in 0..k {
                let mut b_p = [T::zero(); COLS];
                for (j, b_pj) in b_p.iter_mut().enumerate().take(cols) {
                    *b_pj = b.at(p, j0 + j);
                }
                for (r, acc_row) in acc.iter_mut().enumerate().take(rows) {
                    let a_ip = a.at(i0 + r, p);
                    for (acc_ij, &b_pj) in acc_row.iter_mut().zip(&b_p) {
                        *acc_ij = term(a_ip, b_pj, *acc_ij);
                    }
                }
            }

            for (r, acc_row) in acc.iter().enumerate().take(rows) {
                let start = (i0 + r) * ldc + j0;
                c[start..start + cols].copy_from_slice(&acc_row[..cols]);
            }
        }
    }
}
