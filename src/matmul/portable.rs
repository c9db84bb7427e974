//! The portable micro-kernel, in safe Rust for any [`Scalar`].
//!
//! It is the kernel of every element type other than `f32` and `f64`, and of those two
//! on CPUs without the SIMD kernels. The tile loops have fixed bounds so that LLVM
//! unrolls them and vectorises the columns on the baseline target.

use super::kernel::{APanel, BPanel, MicroKernel, check_tile};
use super::small::gemm_small;
use crate::matrix::MatrixView;
use crate::scalar::Scalar;

/// The portable kernel: a 4 × 8 tile, one multiply and one add per term (no fused
/// multiply-add, which would need a slow software fallback on CPUs without one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

const MR: usize = 4;
const NR: usize = 8;

impl<T: Scalar> MicroKernel<T> for Portable {
    const MR: usize = MR;
    const NR: usize = NR;
    // Block sizes for a 32 KiB L1 and an L2 of 512 KiB or more, with 4-byte or 8-byte
    // elements. They are not tuned, because f32 and f64 use the SIMD kernels where they run.
    const KC: usize = 256;
    const MC: usize = 128;
    const NC: usize = 1024;

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
    ) {
        check_tile(MR, NR, k, a, b, c, ldc, rows, cols);

        let mut acc = [[T::zero(); NR]; MR];
        if accumulate {
            for (i, acc_row) in acc.iter_mut().enumerate().take(rows) {
                acc_row[..cols].copy_from_slice(&c[i * ldc..i * ldc + cols]);
            }
        }

        // One rank-1 update per p, in increasing p.
        for p in 0..k {
            let b_p = &b.data[p * b.row_stride..][..NR];
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let a_ip = a.data[i * a.row_stride + p * a.col_stride];
                for (acc_ij, &b_pj) in acc_row.iter_mut().zip(b_p) {
                    *acc_ij = *acc_ij + a_ip * b_pj;
                }
            }
        }

        for (i, acc_row) in acc.iter().enumerate().take(rows) {
            c[i * ldc..i * ldc + cols].copy_from_slice(&acc_row[..cols]);
        }
    }

    fn gemm_small(self, a: MatrixView<'_, T>, b: MatrixView<'_, T>, c: &mut [T], ldc: usize) {
        gemm_small(a, b, c, ldc, |a_ip, b_pj, acc| acc + a_ip * b_pj);
    }
}
