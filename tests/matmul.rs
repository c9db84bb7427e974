//! Matrix multiply against a float64 reference, for every micro-kernel this CPU can
//! run: every shape up to 33 in each dimension, the three layouts `A·B`, `A·Bᵀ` and
//! `Aᵀ·B`, random larger shapes, bit-identity across shapes and thread counts, and the
//! propagation of NaN and infinity.

mod common;

use std::num::NonZeroUsize;

use common::reference::{self, Mat};
use proptest::prelude::*;
use qkv::{Error, GemmKernel, Matrix, MatrixView, Parallelism, Scalar, gemm_with_kernel};

/// Returns a `rows × cols` matrix of values in `[-1, 1)` from `seed`, none of them zero.
fn random_matrix<T: Scalar>(rows: usize, cols: usize, seed: u64) -> Matrix<T> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Matrix::from_fn(rows, cols, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        T::from(if x == 0.0 { 0.5 } else { x }).unwrap()
    })
    .unwrap()
}

/// Returns the kernels that run for `T` here, checking that the ones this CPU
/// advertises are among them, so that no test passes by skipping every SIMD path.
fn kernels<T: Scalar>() -> Vec<GemmKernel> {
    let a = Matrix::<T>::zeros(1, 1).unwrap();
    let runs = |kernel| gemm_with_kernel(kernel, a.view(), a.view(), &mut [T::zero()], 1, Parallelism::Sequential);
    let available: Vec<GemmKernel> = GemmKernel::ALL.into_iter().filter(|&kernel| runs(kernel).unwrap()).collect();

    assert!(available.contains(&GemmKernel::Portable), "the portable kernel must always run");
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            assert!(available.contains(&GemmKernel::Avx512), "AVX-512F is present but its kernel did not run");
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            assert!(available.contains(&GemmKernel::Avx2Fma), "AVX2 and FMA are present but their kernel did not run");
        }
    }
    available
}

/// Returns `A·B` computed with `kernel` into a fresh matrix. The matrix starts as NaN,
/// so an element that the kernel leaves unwritten fails the checks.
fn product<T: Scalar>(kernel: GemmKernel, a: MatrixView<'_, T>, b: MatrixView<'_, T>, par: Parallelism) -> Matrix<T> {
    let (m, n) = (a.rows(), b.cols());
    let mut c = vec![T::nan(); m * n];
    let ran = gemm_with_kernel(kernel, a, b, &mut c, n, par).unwrap();
    assert!(ran, "kernel {kernel:?} did not run");
    Matrix::from_vec(m, n, c).unwrap()
}

/// Returns the view of the top-left `rows × cols` block of `v`.
fn block<T: Scalar>(v: MatrixView<'_, T>, rows: usize, cols: usize) -> MatrixView<'_, T> {
    v.row_range(0..rows).unwrap().columns(0..cols).unwrap()
}

/// The three layouts of the operands, each stored so that the product reads it through
/// strides rather than a copy.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// `A` and `B` row-major.
    AB,
    /// `B` stored `n × k` and read transposed, as `Q·Kᵀ` reads the keys.
    ABt,
    /// `A` stored `k × m` and read transposed.
    AtB,
}

const LAYOUTS: [Layout; 3] = [Layout::AB, Layout::ABt, Layout::AtB];

/// Checks every element of `c` (`m × n`) against `Σ_p a_ip·b_pj` in float64, within the
/// rounding-error bound `2·k·ε·Σ_p |a_ip·b_pj|` of a length-`k` sum in `T`.
fn assert_close<T: Scalar>(c: &Matrix<T>, a: &Mat, b: &Mat, context: &str) {
    let eps = T::epsilon().to_f64().unwrap();
    let k = a.cols;
    for i in 0..c.rows() {
        for j in 0..c.cols() {
            let (mut sum, mut magnitude) = (0.0, 0.0);
            for p in 0..k {
                sum += a.at(i, p) * b.at(p, j);
                magnitude += (a.at(i, p) * b.at(p, j)).abs();
            }
            let actual = c[(i, j)].to_f64().unwrap();
            let tolerance = 2.0 * k as f64 * eps * magnitude + f64::MIN_POSITIVE;
            assert!(
                (actual - sum).abs() <= tolerance,
                "{context}: C[{i}][{j}] = {actual}, expected {sum} within {tolerance}"
            );
        }
    }
}

/// Runs every `(m, n, k)` in `1..=33` for one kernel and layout, against the float64
/// reference and, bit for bit, against the same rows of a product with `TALL` rows.
///
/// The operands are blocks of one `TALL × 33` and one 33 × 33 matrix, so their strides
/// stay fixed while the shape changes. The small products take the unpacked path for
/// small sizes and the tall ones the packed path, so the bit comparison checks that
/// both paths give every element the same bits.
fn sweep_small_shapes<T: Scalar>(kernel: GemmKernel, layout: Layout) {
    const MAX: usize = 33;
    const TALL: usize = 200;
    let a_stored = match layout {
        Layout::AtB => random_matrix::<T>(MAX, TALL, 11),
        Layout::AB | Layout::ABt => random_matrix::<T>(TALL, MAX, 11),
    };
    let b_stored = random_matrix::<T>(MAX, MAX, 12);
    let (a_full, b_full) = match layout {
        Layout::AB => (a_stored.view(), b_stored.view()),
        Layout::ABt => (a_stored.view(), b_stored.view().t()),
        Layout::AtB => (a_stored.view().t(), b_stored.view()),
    };
    let a64 = Mat::from_matrix(&block(a_full, MAX, MAX).to_matrix());
    let b64 = Mat::from_matrix(&b_full.to_matrix());
    let tall: Vec<Matrix<T>> = (1..=MAX)
        .map(|k| product(kernel, block(a_full, TALL, k), block(b_full, k, MAX), Parallelism::Sequential))
        .collect();

    // prefix[k][i][j] is the float64 sum over p < k, and bound[k][i][j] the sum of |terms|.
    let mut prefix = vec![vec![0.0; MAX * MAX]; MAX + 1];
    let mut bound = vec![vec![0.0; MAX * MAX]; MAX + 1];
    for k in 1..=MAX {
        for i in 0..MAX {
            for j in 0..MAX {
                let term = a64.at(i, k - 1) * b64.at(k - 1, j);
                prefix[k][i * MAX + j] = prefix[k - 1][i * MAX + j] + term;
                bound[k][i * MAX + j] = bound[k - 1][i * MAX + j] + term.abs();
            }
        }
    }

    let eps = T::epsilon().to_f64().unwrap();
    for m in 1..=MAX {
        for n in 1..=MAX {
            for k in 1..=MAX {
                let c = product(kernel, block(a_full, m, k), block(b_full, k, n), Parallelism::Sequential);
                for i in 0..m {
                    let context = format!("{kernel:?} {layout:?} {m}×{k}·{k}×{n}, row {i} against {TALL} rows");
                    assert_same_bits(c.row(i).unwrap(), &tall[k - 1].row(i).unwrap()[..n], &context);
                    for j in 0..n {
                        let actual = c[(i, j)].to_f64().unwrap();
                        let expected = prefix[k][i * MAX + j];
                        let tolerance = 2.0 * k as f64 * eps * bound[k][i * MAX + j];
                        assert!(
                            (actual - expected).abs() <= tolerance,
                            "{kernel:?} {layout:?} {m}×{k}·{k}×{n}: C[{i}][{j}] = {actual}, expected {expected}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_small_shapes_f32() {
    for kernel in kernels::<f32>() {
        for layout in LAYOUTS {
            sweep_small_shapes::<f32>(kernel, layout);
        }
    }
}

#[test]
fn matmul_small_shapes_f64() {
    for kernel in kernels::<f64>() {
        for layout in LAYOUTS {
            sweep_small_shapes::<f64>(kernel, layout);
        }
    }
}

/// Checks one product of views of the given layout against the reference.
fn check_layout<T: Scalar>(kernel: GemmKernel, layout: Layout, m: usize, k: usize, n: usize, seed: u64) {
    let (a_stored, b_stored) = match layout {
        Layout::AB => (random_matrix::<T>(m, k, seed), random_matrix::<T>(k, n, seed + 1)),
        Layout::ABt => (random_matrix::<T>(m, k, seed), random_matrix::<T>(n, k, seed + 1)),
        Layout::AtB => (random_matrix::<T>(k, m, seed), random_matrix::<T>(k, n, seed + 1)),
    };
    let (a, b) = match layout {
        Layout::AB => (a_stored.view(), b_stored.view()),
        Layout::ABt => (a_stored.view(), b_stored.view().t()),
        Layout::AtB => (a_stored.view().t(), b_stored.view()),
    };
    let c = product(kernel, a, b, Parallelism::Sequential);
    let (a64, b64) = (Mat::from_matrix(&a.to_matrix()), Mat::from_matrix(&b.to_matrix()));
    assert_close(&c, &a64, &b64, &format!("{kernel:?} {layout:?} {m}×{k}·{k}×{n}"));
}

/// Products deeper than any kernel's `KC`, so that tiles of `C` are loaded back and
/// added to, in every layout.
#[test]
fn matmul_deep_products_match_reference() {
    for (i, layout) in LAYOUTS.into_iter().enumerate() {
        let seed = 50 + i as u64;
        for kernel in kernels::<f32>() {
            check_layout::<f32>(kernel, layout, 37, 2100, 45, seed);
        }
        for kernel in kernels::<f64>() {
            check_layout::<f64>(kernel, layout, 37, 2100, 45, seed);
        }
    }
}

/// Products with a few rows and a wide `B`, whose full panels are read in place when
/// few panels of `A` meet them, with and without a partial last panel of rows.
#[test]
fn matmul_few_rows_wide_b_match_reference() {
    for m in [1, 5, 6, 13, 18, 19, 25] {
        for kernel in kernels::<f32>() {
            check_layout::<f32>(kernel, Layout::AB, m, 300, 777, 60 + m as u64);
        }
        for kernel in kernels::<f64>() {
            check_layout::<f64>(kernel, Layout::AB, m, 300, 777, 60 + m as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn matmul_random_large_shapes(m in 1usize..300, k in 1usize..600, n in 1usize..300, layout in 0usize..3, seed in 0u64..1000) {
        for kernel in kernels::<f32>() {
            check_layout::<f32>(kernel, LAYOUTS[layout], m, k, n, seed);
        }
        for kernel in kernels::<f64>() {
            check_layout::<f64>(kernel, LAYOUTS[layout], m, k, n, seed);
        }
    }
}

/// Asserts that two matrices have the same bits in every element.
fn assert_same_bits<T: Scalar>(actual: &[T], expected: &[T], context: &str) {
    assert_eq!(actual.len(), expected.len(), "{context}: lengths differ");
    for (index, (x, y)) in actual.iter().zip(expected).enumerate() {
        let same = x == y && x.is_sign_negative() == y.is_sign_negative() || x.is_nan() && y.is_nan();
        assert!(same, "{context}: element {index} is {x:?}, expected {y:?}");
    }
}

/// Checks that every block of rows and columns of `A·B`, computed alone, has the bits
/// it has inside the whole product, with `k` long enough to cross the `KC` blocks.
fn check_blocks_match_whole<T: Scalar>(kernel: GemmKernel) {
    let (m, k, n) = (75, 1100, 83);
    let a = random_matrix::<T>(m, k, 21);
    let b = random_matrix::<T>(k, n, 22);
    let whole = product(kernel, a.view(), b.view(), Parallelism::Sequential);

    // Some blocks are small enough for the unpacked path, and the others are packed.
    let blocks =
        [(0..1, 0..n), (5..6, 3..4), (0..2, 0..16), (13..40, 0..n), (74..75, 30..83), (0..m, 17..50), (1..m, 1..n)];
    for (rows, cols) in blocks {
        let a_rows = a.view().row_range(rows.clone()).unwrap();
        let b_cols = b.view().columns(cols.clone()).unwrap();
        let part = product(kernel, a_rows, b_cols, Parallelism::Sequential);
        for (r, i) in rows.clone().enumerate() {
            let context = format!("{kernel:?} rows {rows:?} cols {cols:?}, row {i}");
            assert_same_bits(part.row(r).unwrap(), &whole.row(i).unwrap()[cols.clone()], &context);
        }
    }

    // Writing into a wider C (row stride above n) changes nothing either.
    let ldc = n + 5;
    let mut wide = vec![T::nan(); (m - 1) * ldc + n];
    assert!(gemm_with_kernel(kernel, a.view(), b.view(), &mut wide, ldc, Parallelism::Sequential).unwrap());
    for i in 0..m {
        assert_same_bits(&wide[i * ldc..i * ldc + n], whole.row(i).unwrap(), &format!("{kernel:?} ldc {ldc}, row {i}"));
    }
}

#[test]
fn matmul_blocks_match_whole_product() {
    for kernel in kernels::<f32>() {
        check_blocks_match_whole::<f32>(kernel);
    }
    for kernel in kernels::<f64>() {
        check_blocks_match_whole::<f64>(kernel);
    }
}

/// Checks that the product has the same bits for 1 to 4 threads and on a repeated run.
fn check_thread_counts<T: Scalar>(kernel: GemmKernel) {
    // Large enough that the driver really starts threads.
    let (m, k, n) = (403, 300, 310);
    let a = random_matrix::<T>(m, k, 31);
    let b = random_matrix::<T>(n, k, 32);
    let one = product(kernel, a.view(), b.view().t(), Parallelism::Sequential);
    let again = product(kernel, a.view(), b.view().t(), Parallelism::Sequential);
    assert_same_bits(again.as_slice(), one.as_slice(), &format!("{kernel:?} repeated run"));

    for threads in 2..=4 {
        let par = Parallelism::Threads(NonZeroUsize::new(threads).unwrap());
        let c = product(kernel, a.view(), b.view().t(), par);
        assert_same_bits(c.as_slice(), one.as_slice(), &format!("{kernel:?} with {threads} threads"));
    }
    let auto = product(kernel, a.view(), b.view().t(), Parallelism::Auto);
    assert_same_bits(auto.as_slice(), one.as_slice(), &format!("{kernel:?} with Parallelism::Auto"));
}

#[test]
fn matmul_same_bits_any_thread_count() {
    for kernel in kernels::<f32>() {
        check_thread_counts::<f32>(kernel);
    }
    for kernel in kernels::<f64>() {
        check_thread_counts::<f64>(kernel);
    }
}

/// Places NaN, +∞ and a zero that meets +∞ in edge rows and columns and in the last `KC`
/// block, and checks that exactly the outputs they reach are non-finite.
fn check_non_finite<T: Scalar>(kernel: GemmKernel, n: usize) {
    let (m, k) = (25, 1100);
    let mut a = random_matrix::<T>(m, k, 41);
    let mut b = random_matrix::<T>(k, n, 42);
    let (nan_row, nan_p) = (24, 3);
    let (inf_p, inf_col) = (k - 1, n - 1);
    let zero_row = 12;
    a[(nan_row, nan_p)] = T::nan();
    b[(inf_p, inf_col)] = T::infinity();
    a[(zero_row, inf_p)] = T::zero();

    let c = product(kernel, a.view(), b.view(), Parallelism::Sequential);
    for i in 0..m {
        for j in 0..n {
            let x = c[(i, j)];
            let context = format!("{kernel:?}: C[{i}][{j}] = {x:?}");
            if i == nan_row || (i == zero_row && j == inf_col) {
                assert!(x.is_nan(), "{context}, expected NaN");
            } else if j == inf_col {
                let sign = a[(i, inf_p)].signum();
                assert!(x.is_infinite(), "{context}, expected {sign:?}·∞");
                assert_eq!(x.signum(), sign, "{context}: wrong sign of infinity");
            } else {
                assert!(x.is_finite(), "{context}, expected a finite value");
            }
        }
    }
}

#[test]
fn matmul_nan_and_infinity_reach_their_outputs() {
    // A narrow B is read in place where the kernel allows it, and a wide one is packed.
    for n in [37, 300] {
        for kernel in kernels::<f32>() {
            check_non_finite::<f32>(kernel, n);
        }
        for kernel in kernels::<f64>() {
            check_non_finite::<f64>(kernel, n);
        }
    }
}

#[test]
fn matmul_empty_k_gives_zeros() {
    let a = Matrix::<f32>::zeros(3, 0).unwrap();
    let b = Matrix::<f32>::zeros(0, 4).unwrap();
    for kernel in kernels::<f32>() {
        let c = product(kernel, a.view(), b.view(), Parallelism::Sequential);
        assert!(c.as_slice().iter().all(|&x| x == 0.0), "{kernel:?}: {c:?}");
    }
    let empty = Matrix::<f64>::zeros(0, 5).unwrap().matmul(&Matrix::zeros(5, 2).unwrap()).unwrap();
    assert_eq!(empty.shape(), (0, 2));
}

#[test]
fn gemm_with_kernel_rejects_bad_shapes() {
    let a = Matrix::<f64>::zeros(2, 3).unwrap();
    let b = Matrix::<f64>::zeros(4, 2).unwrap();
    let mut c = [0.0; 4];
    let err = gemm_with_kernel(GemmKernel::Portable, a.view(), b.view(), &mut c, 2, Parallelism::Sequential);
    assert_eq!(err, Err(Error::MatmulShape { left: (2, 3), right: (4, 2) }));

    let b = Matrix::<f64>::zeros(3, 2).unwrap();
    let short = gemm_with_kernel(GemmKernel::Portable, a.view(), b.view(), &mut c[..3], 2, Parallelism::Sequential);
    assert_eq!(short, Err(Error::DataLength { rows: 2, cols: 2, len: 3 }));
    let narrow = gemm_with_kernel(GemmKernel::Portable, a.view(), b.view(), &mut c, 1, Parallelism::Sequential);
    assert_eq!(narrow, Err(Error::DataLength { rows: 2, cols: 2, len: 4 }));
}

#[test]
fn matmul_public_api_matches_reference() {
    let a = random_matrix::<f64>(70, 45, 51);
    let b = random_matrix::<f64>(45, 66, 52);
    let c = a.matmul(&b).unwrap();
    let expected = reference::matmul(&Mat::from_matrix(&a), &Mat::from_matrix(&b));
    assert_close(&c, &Mat::from_matrix(&a), &Mat::from_matrix(&b), "Matrix::matmul");
    assert_eq!(expected.rows, c.rows());
}

/// Returns a copy of `m` stored in a wider buffer (row stride `cols + pad`), so that a
/// product reads it through a different row stride.
fn widened<T: Scalar>(m: &Matrix<T>, pad: usize) -> Matrix<T> {
    Matrix::from_fn(m.rows(), m.cols() + pad, |i, j| if j < m.cols() { m[(i, j)] } else { T::nan() }).unwrap()
}

/// Checks that the bits of `A·B` do not depend on how the operands are stored: tightly
/// (so the driver may read full panels in place), in wider buffers, or transposed (so
/// it must pack them), for narrow and wide `B`.
fn check_storage_independence<T: Scalar>(kernel: GemmKernel) {
    for (m, k, n) in [(64, 64, 64), (50, 530, 40), (37, 300, 130), (130, 70, 300)] {
        let a = random_matrix::<T>(m, k, 61);
        let b = random_matrix::<T>(k, n, 62);
        let tight = product(kernel, a.view(), b.view(), Parallelism::Sequential);
        assert_close(&tight, &Mat::from_matrix(&a), &Mat::from_matrix(&b), &format!("{kernel:?} {m}×{k}·{k}×{n}"));

        let (a_wide, b_wide) = (widened(&a, 300), widened(&b, 300));
        let wide = product(
            kernel,
            a_wide.view().columns(0..k).unwrap(),
            b_wide.view().columns(0..n).unwrap(),
            Parallelism::Sequential,
        );
        assert_same_bits(wide.as_slice(), tight.as_slice(), &format!("{kernel:?} {m}×{k}·{k}×{n} wide storage"));

        let (a_t, b_t) = (a.transpose(), b.transpose());
        let transposed = product(kernel, a_t.view().t(), b_t.view().t(), Parallelism::Sequential);
        assert_same_bits(
            transposed.as_slice(),
            tight.as_slice(),
            &format!("{kernel:?} {m}×{k}·{k}×{n} transposed storage"),
        );
    }
}

#[test]
fn matmul_bits_independent_of_storage() {
    for kernel in kernels::<f32>() {
        check_storage_independence::<f32>(kernel);
    }
    for kernel in kernels::<f64>() {
        check_storage_independence::<f64>(kernel);
    }
}

/// Checks that the SIMD kernels give the same bits as each other, since both compute
/// every term with one fused multiply-add in the same order.
fn check_simd_kernels_agree<T: Scalar>() {
    let simd: Vec<GemmKernel> = kernels::<T>().into_iter().filter(|&kernel| kernel != GemmKernel::Portable).collect();
    let (m, k, n) = (45, 1100, 140);
    let a = random_matrix::<T>(m, k, 71);
    let b = random_matrix::<T>(k, n, 72);
    let results: Vec<Matrix<T>> =
        simd.iter().map(|&kernel| product(kernel, a.view(), b.view(), Parallelism::Sequential)).collect();
    for (kernel, c) in simd.iter().zip(&results).skip(1) {
        assert_same_bits(c.as_slice(), results[0].as_slice(), &format!("{kernel:?} against {:?}", simd[0]));
    }
}

#[test]
fn matmul_simd_kernels_give_same_bits() {
    check_simd_kernels_agree::<f32>();
    check_simd_kernels_agree::<f64>();
}
