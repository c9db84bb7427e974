//! The element trait that every matrix, projection and attention layer is generic over.

use std::fmt::Debug;

use num_traits::Float;

use crate::attention::kernel::StripKernel;
use crate::exp;
use crate::isa::Isa;
use crate::matmul::{self, GemmKernel};
use crate::matrix::MatrixView;
use crate::parallel::Parallelism;

/// A floating-point element type the kernels can run on.
///
/// `f32` and `f64` implement it, with AVX-512F and AVX2 kernels where the CPU has
/// them. A float type defined in your own crate that
/// implements [`num_traits::Float`] can implement it with an empty `impl` and runs the
/// portable kernels. Rust's orphan rule keeps a crate from implementing it for a type
/// of a third crate, such as `half::bf16`. Sums are accumulated in `Self`.
///
/// ```
/// use qkv::{Matrix, Scalar};
///
/// fn trace<T: Scalar>(m: &Matrix<T>) -> T {
///     (0..m.rows().min(m.cols())).fold(T::zero(), |acc, i| acc + m[(i, i)])
/// }
///
/// let m = Matrix::from_rows(&[[1.0_f64, 2.0], [3.0, 4.0]]).unwrap();
/// assert_eq!(trace(&m), 5.0);
/// ```
pub trait Scalar: Float + Debug + Send + Sync + 'static {
    /// Computes `C = A·B` into the row-major `C` with row stride `ldc`.
    ///
    /// Shapes are checked by the caller: `A` is `m × k`, `B` is `k × n`, and `C` holds
    /// at least `(m - 1) * ldc + n` elements with `ldc >= n`. Each element of `C` is
    /// summed over `k` in the same order whatever `m`, `n` and the parallelism are, so a
    /// row's result does not depend on which other rows are computed with it.
    ///
    /// The default runs the portable kernel. Implementations override it only to
    /// dispatch to a faster kernel with the same contract.
    #[doc(hidden)]
    fn gemm(a: MatrixView<'_, Self>, b: MatrixView<'_, Self>, c: &mut [Self], ldc: usize, parallelism: Parallelism) {
        matmul::gemm_portable(a, b, c, ldc, parallelism);
    }

    /// Computes `C = A·B` as [`Scalar::gemm`] does, but with the micro-kernel family
    /// `kernel`; returns `false` without touching `c` when `kernel` cannot run for
    /// `Self` on this CPU.
    ///
    /// The default runs only [`GemmKernel::Portable`]. It exists so that tests can
    /// compare every kernel the CPU has.
    #[doc(hidden)]
    fn gemm_with_kernel(
        kernel: GemmKernel,
        a: MatrixView<'_, Self>,
        b: MatrixView<'_, Self>,
        c: &mut [Self],
        ldc: usize,
        parallelism: Parallelism,
    ) -> bool {
        if kernel != GemmKernel::Portable {
            return false;
        }
        matmul::gemm_portable(a, b, c, ldc, parallelism);
        true
    }

    /// Replaces every `x` in `xs` with `exp(x)`.
    ///
    /// The default calls [`Float::exp`] on each element. Implementations override it
    /// only to dispatch to a vectorised `exp` of comparable accuracy.
    #[doc(hidden)]
    fn exp_in_place(xs: &mut [Self]) {
        for x in xs {
            *x = x.exp();
        }
    }

    /// Returns the fused attention kernel for `isa`.
    ///
    /// The default returns the portable kernel whatever `isa` is. Implementations
    /// override it only to return a SIMD kernel of the same contract, and fall back to
    /// the portable one when the CPU lacks `isa`.
    #[doc(hidden)]
    fn strip_kernel(isa: Isa) -> StripKernel<Self> {
        let _ = isa;
        StripKernel::portable()
    }
}

impl Scalar for f32 {
    fn gemm(a: MatrixView<'_, f32>, b: MatrixView<'_, f32>, c: &mut [f32], ldc: usize, parallelism: Parallelism) {
        matmul::gemm_f32(a, b, c, ldc, parallelism);
    }

    fn gemm_with_kernel(
        kernel: GemmKernel,
        a: MatrixView<'_, f32>,
        b: MatrixView<'_, f32>,
        c: &mut [f32],
        ldc: usize,
        parallelism: Parallelism,
    ) -> bool {
        matmul::gemm_simd(kernel, a, b, c, ldc, parallelism)
    }

    fn exp_in_place(xs: &mut [f32]) {
        exp::exp_f32(xs);
    }

    fn strip_kernel(isa: Isa) -> StripKernel<f32> {
        StripKernel::for_f32(isa)
    }
}

impl Scalar for f64 {
    fn gemm(a: MatrixView<'_, f64>, b: MatrixView<'_, f64>, c: &mut [f64], ldc: usize, parallelism: Parallelism) {
        matmul::gemm_f64(a, b, c, ldc, parallelism);
    }

    fn gemm_with_kernel(
        kernel: GemmKernel,
        a: MatrixView<'_, f64>,
        b: MatrixView<'_, f64>,
        c: &mut [f64],
        ldc: usize,
        parallelism: Parallelism,
    ) -> bool {
        matmul::gemm_simd(kernel, a, b, c, ldc, parallelism)
    }

    fn exp_in_place(xs: &mut [f64]) {
        exp::exp_f64(xs);
    }

    fn strip_kernel(isa: Isa) -> StripKernel<f64> {
        StripKernel::for_f64(isa)
    }
}

/// Converts a count to `T`, giving NaN where `T` cannot represent it.
pub(crate) fn cast_usize<T: Float>(x: usize) -> T {
    T::from(x).unwrap_or_else(T::nan)
}
