//! Matrix multiply throughput: qkv beside the `gemm` crate, `matrixmultiply` and (for
//! small sizes) a naive triple loop, all on one thread and in one run, plus qkv on two
//! threads at n = 1024.
//!
//! `scripts/compare_openblas.py` adds numpy's OpenBLAS to the same table.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qkv::{Matrix, MatrixView, Parallelism};

/// Returns a `rows × cols` matrix of values in `[-1, 1)` from a fixed seed.
fn random_matrix<T: qkv::Scalar>(rows: usize, cols: usize, seed: u64) -> Matrix<T> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Matrix::from_fn(rows, cols, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        T::from((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).unwrap()
    })
    .unwrap()
}

/// Computes `C = A·B` with the `gemm` crate on one thread.
fn gemm_crate<T: qkv::Scalar>(a: MatrixView<'_, T>, b: MatrixView<'_, T>, c: &mut [T]) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    // SAFETY: the views and `c` (m × n, row-major) bound every element the call touches.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_raw_slice().as_ptr(),
            a.col_stride() as isize,
            a.row_stride() as isize,
            b.as_raw_slice().as_ptr(),
            b.col_stride() as isize,
            b.row_stride() as isize,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Computes `C = A·B` with `matrixmultiply` (which is single-threaded by default).
fn matrixmultiply_f32(a: MatrixView<'_, f32>, b: MatrixView<'_, f32>, c: &mut [f32]) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    // SAFETY: as for `gemm_crate`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_raw_slice().as_ptr(),
            a.row_stride() as isize,
            a.col_stride() as isize,
            b.as_raw_slice().as_ptr(),
            b.row_stride() as isize,
            b.col_stride() as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Computes `C = A·B` with `matrixmultiply` for `f64`.
fn matrixmultiply_f64(a: MatrixView<'_, f64>, b: MatrixView<'_, f64>, c: &mut [f64]) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    // SAFETY: as for `gemm_crate`.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_raw_slice().as_ptr(),
            a.row_stride() as isize,
            a.col_stride() as isize,
            b.as_raw_slice().as_ptr(),
            b.row_stride() as isize,
            b.col_stride() as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Computes `C = A·B` by the textbook triple loop, the bar for small sizes.
fn naive<T: qkv::Scalar>(a: MatrixView<'_, T>, b: MatrixView<'_, T>, c: &mut [T]) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (a, b) = (a.as_raw_slice(), b.as_raw_slice());
    for i in 0..m {
        for j in 0..n {
            let mut sum = T::zero();
            for p in 0..k {
                sum = sum + a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = sum;
        }
    }
}

/// One benchmarked shape: `m × k` times `k × n`, with `B` read transposed when
/// `b_transposed` (as `Q·Kᵀ` reads the keys).
struct Shape {
    name: String,
    m: usize,
    k: usize,
    n: usize,
    b_transposed: bool,
}

fn shapes() -> Vec<Shape> {
    let square = [8, 16, 32, 64, 128, 256, 512, 1024];
    let mut shapes: Vec<Shape> =
        square.iter().map(|&n| Shape { name: format!("{n}"), m: n, k: n, n, b_transposed: false }).collect();
    shapes.push(Shape { name: "2048x64*64x2048".into(), m: 2048, k: 64, n: 2048, b_transposed: true });
    shapes.push(Shape { name: "2048x2048*2048x64".into(), m: 2048, k: 2048, n: 64, b_transposed: false });
    shapes
}

type Baseline<T> = fn(MatrixView<'_, T>, MatrixView<'_, T>, &mut [T]);

fn bench_type<T: qkv::Scalar>(c: &mut Criterion, type_name: &str, matrixmultiply: Baseline<T>) {
    for shape in shapes() {
        let mut group = c.benchmark_group(format!("matmul_{type_name}"));
        let flops = 2 * shape.m * shape.n * shape.k;
        group.throughput(Throughput::Elements(flops as u64));
        if flops > 100_000_000 {
            group.sample_size(20);
        }

        let a = random_matrix::<T>(shape.m, shape.k, 1);
        let b_stored = if shape.b_transposed {
            random_matrix::<T>(shape.n, shape.k, 2)
        } else {
            random_matrix::<T>(shape.k, shape.n, 2)
        };
        let b = if shape.b_transposed { b_stored.view().t() } else { b_stored.view() };
        let mut out = vec![T::zero(); shape.m * shape.n];

        group.bench_function(BenchmarkId::new("qkv", &shape.name), |bench| {
            bench.iter(|| T::gemm(black_box(a.view()), black_box(b), &mut out, shape.n, Parallelism::Sequential))
        });
        group.bench_function(BenchmarkId::new("gemm", &shape.name), |bench| {
            bench.iter(|| gemm_crate(black_box(a.view()), black_box(b), &mut out))
        });
        group.bench_function(BenchmarkId::new("matrixmultiply", &shape.name), |bench| {
            bench.iter(|| matrixmultiply(black_box(a.view()), black_box(b), &mut out))
        });
        if shape.m <= 32 {
            group.bench_function(BenchmarkId::new("naive", &shape.name), |bench| {
                bench.iter(|| naive(black_box(a.view()), black_box(b), &mut out))
            });
        }
        if shape.m == 1024 {
            let two = Parallelism::Threads(std::num::NonZeroUsize::new(2).unwrap());
            group.bench_function(BenchmarkId::new("qkv-2-threads", &shape.name), |bench| {
                bench.iter(|| T::gemm(black_box(a.view()), black_box(b), &mut out, shape.n, two))
            });
        }
        group.finish();
    }
}

fn matmul(c: &mut Criterion) {
    bench_type::<f32>(c, "f32", matrixmultiply_f32);
    bench_type::<f64>(c, "f64", matrixmultiply_f64);
}

criterion_group!(benches, matmul);
criterion_main!(benches);
