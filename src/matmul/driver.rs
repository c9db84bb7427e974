//! The blocked loops of the GEMM: cache blocks of `A` and `B` are packed, then walked
//! tile by tile with a [`MicroKernel`].
//!
//! The loops follow BLIS with the roles of the two operands swapped, because `C` is
//! row-major and the tiles are wide. So the `MR × KC` micro-panel of `A` stays in L1
//! while the kernel streams the `KC × NR` micro-panels of a packed `B` block from L2. "Loop
//! n" below is BLIS's n-th loop around the micro-kernel with `A` and `B` exchanged.

use std::ops::Range;

use super::kernel::{APanel, BPanel, MicroKernel};
use super::pack::{a_layout, pack_a, pack_b, with_buffers};
use super::small::SMALL_MAX_WORK;
use crate::matrix::MatrixView;
use crate::parallel::{Parallelism, for_each_row_block};
use crate::scalar::Scalar;

/// Computes `C = A·B` (`m × k` times `k × n`) into row-major `C` with row stride `ldc`,
/// using `kernel` for every tile.
///
/// Rows of `C` are spread over threads in whole tiles, and each element is one running
/// sum over `p = 0..k` in the kernel's arithmetic, so the bits of an element depend on
/// neither `m`, `n`, its position nor the thread count. Products of at most
/// `SMALL_MAX_WORK` multiply-adds skip packing and give the same bits.
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
    if work <= SMALL_MAX_WORK {
        kernel.gemm_small(a, b, c, ldc);
        return;
    }
    // NOTE: only rows are split, so a product with at most MR rows (a decoding step, say)
    // runs on one thread however wide it is.
    let threads = parallelism.threads_for(work, m.div_ceil(K::MR));
    for_each_row_block(c, ldc, m, K::MR, threads, |rows, c_rows| gemm_rows(kernel, a, b, rows, c_rows, ldc));
}

/// Largest number of `NR`-column panels in `B` for which full panels of a row-major
/// `A` are read in place rather than packed. Up to it, packing `A` cost more than the
/// reuse of the packed copy repaid, as measured on Zen 4.
const DIRECT_A_MAX_PANELS: usize = 4;

/// Largest row stride of a row-major `B`, in `NR`-column panels, for which full panels
/// of `B` are read in place rather than packed.
const DIRECT_B_MAX_PANELS: usize = 4;

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

    // Equal row blocks that pack at most as much of A as MC rows of depth KC would. A
    // shallow product so packs more rows at once and B fewer times. No block is a thin
    // leftover.
    let kc_max = K::KC.min(k);
    let panel_len = a_layout(&a, K::MR, kc_max).panel_len;
    let mc_max = (K::MC / K::MR * a_layout(&a, K::MR, K::KC).panel_len / panel_len).max(1) * K::MR;
    let m_blocks = rows.len().div_ceil(mc_max);
    let mc = rows.len().div_ceil(m_blocks).next_multiple_of(K::MR);

    // When each panel of A meets few panels of B, copying A costs more than reading it
    // in place would: full panels of a row-major A are then read where they lie.
    let direct_a = a.col_stride() == 1 && n <= DIRECT_A_MAX_PANELS * K::NR;

    // When the rows of a row-major B lie close together (at most four panels apart),
    // its full panels are nearly as compact as packed ones, so they too are read in place.
    let direct_b = b.col_stride() == 1 && b.row_stride() <= DIRECT_B_MAX_PANELS * K::NR;
    let full_b_panels = |n_block: usize| if direct_b { n_block / K::NR } else { 0 };

    // Read in place, A only needs room for its last, partial panel.
    let a_len = if direct_a { panel_len } else { mc / K::MR * panel_len };
    let b_len = K::NC.min(n).next_multiple_of(K::NR) * kc_max;

    with_buffers(a_len, b_len, |a_buffer: &mut [T], b_buffer: &mut [T]| {
        // Loop 5: blocks of mc rows of A and C.
        for ic in rows.clone().step_by(mc) {
            let m_block = mc.min(rows.end - ic);
            let full_panels = if direct_a { m_block / K::MR } else { 0 };

            // Loop 4: blocks of KC along k. The first overwrites C, the others add to it.
            for pc in (0..k).step_by(K::KC) {
                let kc = K::KC.min(k - pc);
                let layout = a_layout(&a, K::MR, kc);
                let packed_rows = ic + full_panels * K::MR..ic + m_block;
                let a_packed = &mut a_buffer[..packed_rows.len().div_ceil(K::MR) * layout.panel_len];
                pack_a(a, packed_rows, pc..pc + kc, K::MR, layout, a_packed);
                let a_packed = &*a_packed;
                let a_panel = |q: usize| {
                    if q < full_panels {
                        let start = (ic + q * K::MR) * a.row_stride() + pc;
                        let data = &a.as_raw_slice()[start..];
                        APanel { data, row_stride: a.row_stride(), col_stride: 1 }
                    } else {
                        let data = &a_packed[(q - full_panels) * layout.panel_len..][..layout.panel_len];
                        APanel { data, row_stride: layout.row_stride, col_stride: layout.col_stride }
                    }
                };

                // Loop 3: blocks of NC columns of B and C.
                for jc in (0..n).step_by(K::NC) {
                    let n_block = K::NC.min(n - jc);
                    let direct_panels = full_b_panels(n_block);
                    let packed_cols = jc + direct_panels * K::NR..jc + n_block;
                    let b_packed = &mut b_buffer[..packed_cols.len().next_multiple_of(K::NR) * kc];
                    pack_b(b, pc..pc + kc, packed_cols, K::NR, b_packed);
                    let b_packed = &*b_packed;
                    let b_panel = |q: usize| {
                        if q < direct_panels {
                            let start = pc * b.row_stride() + jc + q * K::NR;
                            BPanel { data: &b.as_raw_slice()[start..], row_stride: b.row_stride() }
                        } else {
                            let data = &b_packed[(q - direct_panels) * K::NR * kc..][..K::NR * kc];
                            BPanel { data, row_stride: K::NR }
                        }
                    };

                    // Loop 2: micro-panels of A, each kept in L1 through loop 1.
                    for (q, ir) in (0..m_block).step_by(K::MR).enumerate() {
                        let a_panel = a_panel(q);
                        let tile_rows = K::MR.min(m_block - ir);
                        let row_offset = (ic - rows.start + ir) * ldc;

                        // Loop 1: micro-panels of B, streamed from L2.
                        for (q, jr) in (0..n_block).step_by(K::NR).enumerate() {
                            let tile_cols = K::NR.min(n_block - jr);
                            let c_tile = &mut c[row_offset + jc + jr..];
                            kernel.tile(kc, a_panel, b_panel(q), c_tile, ldc, tile_rows, tile_cols, pc > 0);
                        }
                    }
                }
            }
        }
    });
}
