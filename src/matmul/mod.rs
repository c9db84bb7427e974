//! Matrix multiply: `C = A·B` over strided views, with one kernel interface
//! ([`Scalar::gemm`](crate::Scalar)) that faster kernels plug into.

pub(crate) mod portable;

use crate::matrix::MatrixView;
use crate::parallel::Parallelism;

/// Computes `C = A·B` for `f32`, with the fastest kernel this CPU supports.
pub(crate) fn gemm_f32(a: MatrixView<'_, f32>, b: MatrixView<'_, f32>, c: &mut [f32], ldc: usize, par: Parallelism) {
    portable::gemm(a, b, c, ldc, par);
}

/// Computes `C = A·B` for `f64`, with the fastest kernel this CPU supports.
pub(crate) fn gemm_f64(a: MatrixView<'_, f64>, b: MatrixView<'_, f64>, c: &mut [f64], ldc: usize, par: Parallelism) {
    portable::gemm(a, b, c, ldc, par);
}
