//! The portable matrix multiply, written in safe Rust for any [`Scalar`].

use crate::matrix::MatrixView;
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// Computes `C = A·B` (`m × k` times `k × n`) into row-major `C` with row stride `ldc`.
///
/// Each `C[i][j]` is summed over `p = 0..k` in order, with one multiply and one add per
/// term, so its bits do not depend on `m`, `n` or which rows are computed together.
pub(crate) fn gemm<T: Scalar>(
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    c: &mut [T],
    ldc: usize,
    _parallelism: Parallelism,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if m == 0 || n == 0 {
        return;
    }

    // Pack B row-major so the inner loop runs over contiguous memory.
    let mut packed_b = Vec::with_capacity(k * n);
    for p in 0..k {
        for j in 0..n {
            packed_b.push(b.at(p, j));
        }
    }

    for i in 0..m {
        let c_row = &mut c[i * ldc..i * ldc + n];
        c_row.fill(T::zero());
        for p in 0..k {
            let a_ip = a.at(i, p);
            let b_row = &packed_b[p * n..(p + 1) * n];
            for (c_ij, &b_pj) in c_row.iter_mut().zip(b_row) {
                *c_ij = *c_ij + a_ip * b_pj;
            }
        }
    }
}
