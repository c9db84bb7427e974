//! Matrix multiply: `C = A·B` over strided views, blocked for the caches and run by a
//! register-blocked micro-kernel chosen once per process for the CPU.
//!
//! `A·Bᵀ` and `Aᵀ·B` are views with swapped strides, which the packing step reads in
//! place. Rows and columns that do not fill a tile go through the same kernel on
//! zero-padded panels, so an element's bits never depend on where it sits in `C`.

mod driver;
mod kernel;
mod pack;
mod portable;
mod small;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::matrix::MatrixView;
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

pub(crate) use portable::Portable;

/// A micro-kernel family, for tests that force each path in turn.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GemmKernel {
    /// The portable kernel, for every element type on every CPU.
    Portable,
    /// The AVX2 + FMA kernels for `f32` and `f64` on x86-64.
    Avx2Fma,
    /// The AVX-512F kernels for `f32` and `f64` on x86-64.
    Avx512,
}

impl GemmKernel {
    /// Every kernel family, whether or not this CPU can run it.
    pub const ALL: [GemmKernel; 3] = [GemmKernel::Portable, GemmKernel::Avx2Fma, GemmKernel::Avx512];
}

/// Computes `C = A·B` with `kernel`, for tests that compare the kernels.
///
/// `A` is `m × k`, `B` is `k × n`, and `C` is row-major with row stride `ldc`. Returns
/// `Ok(false)` without touching `c` when `kernel` cannot run for `T` on this CPU.
///
/// # Errors
///
/// [`Error::MatmulShape`] when `a.cols() != b.rows()`, and [`Error::DataLength`] when
/// `ldc < n` or `c` is shorter than `(m - 1)·ldc + n`.
///
/// ```
/// use qkv::{GemmKernel, Matrix, Parallelism, gemm_with_kernel};
///
/// let a = Matrix::from_rows(&[[1.0_f32, 2.0], [3.0, 4.0]])?;
/// let mut c = [f32::NAN; 4];
/// let ran = gemm_with_kernel(GemmKernel::Portable, a.view(), a.view(), &mut c, 2, Parallelism::Sequential)?;
/// assert!(ran);
/// assert_eq!(c, [7.0, 10.0, 15.0, 22.0]);
/// # Ok::<(), qkv::Error>(())
/// ```
#[doc(hidden)]
pub fn gemm_with_kernel<T: Scalar>(
    kernel: GemmKernel,
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    c: &mut [T],
    ldc: usize,
    parallelism: Parallelism,
) -> Result<bool> {
    let (m, n) = (a.rows(), b.cols());
    if a.cols() != b.rows() {
        return Err(Error::MatmulShape { left: a.shape(), right: b.shape() });
    }
    if m > 0 && n > 0 && (ldc < n || c.len() < (m - 1).saturating_mul(ldc).saturating_add(n)) {
        return Err(Error::DataLength { rows: m, cols: ldc.max(n), len: c.len() });
    }
    Ok(T::gemm_with_kernel(kernel, a, b, c, ldc, parallelism))
}

/// Returns the fastest kernel family for `f32` and `f64` on this CPU, detected once.
fn best_kernel() -> GemmKernel {
    static BEST: OnceLock<GemmKernel> = OnceLock::new();
    *BEST.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if x86::Avx512::detect().is_some() {
                return GemmKernel::Avx512;
            }
            if x86::Avx2Fma::detect().is_some() {
                return GemmKernel::Avx2Fma;
            }
        }
        GemmKernel::Portable
    })
}

/// Computes `C = A·B` for `f32`, with the fastest kernel this CPU supports.
pub(crate) fn gemm_f32(a: MatrixView<'_, f32>, b: MatrixView<'_, f32>, c: &mut [f32], ldc: usize, par: Parallelism) {
    gemm_simd(best_kernel(), a, b, c, ldc, par);
}

/// Computes `C = A·B` for `f64`, with the fastest kernel this CPU supports.
pub(crate) fn gemm_f64(a: MatrixView<'_, f64>, b: MatrixView<'_, f64>, c: &mut [f64], ldc: usize, par: Parallelism) {
    gemm_simd(best_kernel(), a, b, c, ldc, par);
}

/// Computes `C = A·B` with the portable kernel; the default of [`Scalar::gemm`].
pub(crate) fn gemm_portable<T: Scalar>(
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    c: &mut [T],
    ldc: usize,
    par: Parallelism,
) {
    driver::gemm(Portable, a, b, c, ldc, par);
}

/// Computes `C = A·B` with `kernel` for an element type that has SIMD kernels, or
/// returns `false` when this CPU cannot run `kernel`.
#[cfg(target_arch = "x86_64")]
pub(crate) fn gemm_simd<T>(
    kernel: GemmKernel,
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    c: &mut [T],
    ldc: usize,
    par: Parallelism,
) -> bool
where
    T: Scalar,
    x86::Avx512: kernel::MicroKernel<T>,
    x86::Avx2Fma: kernel::MicroKernel<T>,
{
    match kernel {
        GemmKernel::Portable => driver::gemm(Portable, a, b, c, ldc, par),
        GemmKernel::Avx2Fma => match x86::Avx2Fma::detect() {
            Some(token) => driver::gemm(token, a, b, c, ldc, par),
            None => return false,
        },
        GemmKernel::Avx512 => match x86::Avx512::detect() {
            Some(token) => driver::gemm(token, a, b, c, ldc, par),
            None => return false,
        },
    }
    true
}

/// Computes `C = A·B` with `kernel`, or returns `false` when `kernel` is a SIMD family,
/// which this target does not have.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn gemm_simd<T: Scalar>(
    kernel: GemmKernel,
    a: MatrixView<'_, T>,
    b: MatrixView<'_, T>,
    c: &mut [T],
    ldc: usize,
    par: Parallelism,
) -> bool {
    if kernel != GemmKernel::Portable {
        return false;
    }
    driver::gemm(Portable, a, b, c, ldc, par);
    true
}
