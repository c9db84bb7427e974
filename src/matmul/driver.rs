//! The blocked loops of the GEMM: cache blocks of `A` and `B` are packed, then walked
//! tile by tile with a [`MicroKernel`].
//!
//! The loops follow BLIS with the roles of the two operands swapped, because `C` is
//! row-major and the tiles are wide: the `MR × KC` micro-panel of `A` stays in L1 while
//! the kernel streams the `KC × NR` micro-panels of a packed `B` block from L2.

use std::ops::Range;

use super::kernel::MicroKernel;
use super::pack::{PackBuffer, pack_a, pack_b};
use crate::matrix::MatrixView;
use crate::parallel::{Parallelism, for_each_row_block};
use crate::scalar::Scalar;

/// Computes `C = A·B` (`m × k` times `k × n`) into row-major `C` with row stride `ldc`,
/// using `kernel` for every tile.
///
/// Rows of `C` are spread over threads in whole tiles, and each element is one running
/// sum over `p = 0..k` in the kernel's arithmetic, so the bits of an element depend on
/// neither `m`, `n`, its position nor the thread count.
pub(crate) fn gemm<T: Scalar, K: MicroKernel<T>>(
    kernel: K,
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    c: &mut [T],
    ldc: usize,
    parallelism: Parallelism,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            c[i * ldc..i * ldc + n].fill(T::zero());
        }
        return;
    }

    let work = m.saturating_mul(n).saturating_mul(k);
    let threads = parallelism.threads_for(work, m.div_ceil(K::MR));
    for_each_row_block(c, ldc, m, K::MR, threads, |rows, c_rows| gemm_rows(kernel, a, b, rows, c_rows, ldc));
}

/// Computes rows `rows` of `C = A·B` into `c`, which starts at row `rows.start`.
fn gemm_rows<T: Scalar, K: MicroKernel<T>>(
    kernel: K,
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    rows: Range<usize>,
    c: &mut [T],
    ldc: usize,
) {
    let (k, n) = (a.cols(), b.cols());
    let mut a_buffer = PackBuffer::new(K::MC.min(rows.len()).next_multiple_of(K::MR) * K::KC.min(k));
    let mut b_buffer = PackBuffer::new(K::NC.min(n).next_multiple_of(K::NR) * K::KC.min(k));

    // Loop 5: blocks of MC rows of A and C.
    for ic in rows.clone().step_by(K::MC) {
        let m_block = K::MC.min(rows.end - ic);

        // Loop 4: blocks of KC along k. The first overwrites C, the others add to it.
        for pc in (0..k).step_by(K::KC) {
            let kc = K::KC.min(k - pc);
            let a_packed = a_buffer.slice_mut(m_block.next_multiple_of(K::MR) * kc);
            pack_a(a, ic..ic + m_block, pc..pc + kc, K::MR, a_packed);

            // Loop 3: blocks of NC columns of B and C.
            for jc in (0..n).step_by(K::NC) {
                let n_block = K::NC.min(n - jc);
                let b_packed = b_buffer.slice_mut(n_block.next_multiple_of(K::NR) * kc);
                pack_b(b, pc..pc + kc, jc..jc + n_block, K::NR, b_packed);

                // Loop 2: micro-panels of A, each kept in L1 through loop 1.
                for (ir, a_panel) in (0..m_block).step_by(K::MR).zip(a_packed.chunks_exact(K::MR * kc)) {
                    let tile_rows = K::MR.min(m_block - ir);
                    let row_offset = (ic - rows.start + ir) * ldc;

                    // Loop 1: micro-panels of B, streamed from L2.
                    for (jr, b_panel) in (0..n_block).step_by(K::NR).zip(b_packed.chunks_exact(K::NR * kc)) {
                        let tile_cols = K::NR.min(n_block - jr);
                        let c_tile = &mut c[row_offset + jc + jr..];
                        kernel.tile(kc, a_panel, b_panel, c_tile, ldc, tile_rows, tile_cols, pc > 0);
                    }
                }
            }
        }
    }
}
