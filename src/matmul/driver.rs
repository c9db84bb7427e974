//! The blocked loops of the GEMM: cache blocks of `A` and `B` are packed (or, when
//! their layout allows, read in place), then walked tile by tile with a [`MicroKernel`].
//!
//! The loops follow BLIS with the roles of the two operands swapped, because `C` is
//! row-major and the tiles are wide. So one `MR × KC` micro-panel of `A` meets every
//! `KC × NR` micro-panel of a packed `B` block in turn, and the `B` block is packed
//! once for all the panels of `A` in a row block. "Loop n" below is BLIS's n-th loop
//! around the micro-kernel with `A` and `B` exchanged.

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

/// Largest row stride of a row-major `B`, in `NR`-column panels, for which full panels
/// of `B` are read in place rather than packed.
const DIRECT_B_MAX_PANELS: usize = 4;

/// Largest number of `MR`-row panels of `A` for which full panels of a row-major `B`
/// are read in place whatever its row stride. Packing `B` is one extra pass over it,
/// which only pays off when many panels of `A` reuse the packed copy. On Zen 4, with
/// `B` from 768 × 768 to 4096 × 1024, reading in place took 0.5 to 0.96 of the time
/// for 1 to 18 rows of `A`. From 24 rows on it took up to 1.3 times as long.
const DIRECT_B_MAX_A_PANELS: usize = 3;

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

    // Full panels of a row-major A are read where they lie. The kernel reads each of
    // their MR rows as one forward stream, which the hardware prefetchers follow as well
    // as they follow a packed copy, so packing would only add a pass over A. On Zen 4,
    // reading in place made f64 products of n = 256 to 1024 1 to 3 % faster.
    let direct_a = a.col_stride() == 1;

    // With A read in place, one row block takes all the rows, so each block of B is
    // packed once. Otherwise the row blocks are equal and pack at most as much of A as
    // MC rows of depth KC would: a shallow product packs more rows at once and B fewer
    // times. No block is a thin leftover.
    let kc_max = K::KC.min(k);
    let panel_len = a_layout(&a, K::MR, kc_max).panel_len;
    let mc = if direct_a {
        rows.len().next_multiple_of(K::MR)
    } else {
        let mc_max = (K::MC / K::MR * a_layout(&a, K::MR, K::KC).panel_len / panel_len).max(1) * K::MR;
        let m_blocks = rows.len().div_ceil(mc_max);
        rows.len().div_ceil(m_blocks).next_multiple_of(K::MR)
    };

    // Full panels of a row-major B are read in place when its rows lie close together
    // (at most four panels apart), because they are then nearly as compact as packed
    // ones. They are also read in place when only a few panels of A read them.
    let close_rows = b.row_stride() <= DIRECT_B_MAX_PANELS * K::NR;
    let few_a_panels = rows.len() <= DIRECT_B_MAX_A_PANELS * K::MR;
    let direct_b = b.col_stride() == 1 && (close_rows || few_a_panels);
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
