//! The attention score kernel, `softmax(scale · Q·Kᵀ)·V` for one head, beside baselines
//! measured in the same run.
//!
//! - `sdpa/{f32,f64}/{n}`: the public `scaled_dot_product_attention` (the fused path)
//!   beside a naive triple loop, `n ∈ {128, 512, 2048}`, `d = 64`.
//! - `paths/{full,causal}/d{d}/{n}`, `f32`: the fused path on one thread and on two,
//!   the materialised path (whole rows of weights, as `…_weights` builds them) and the
//!   naive loop, `d ∈ {64, 128}`, `n ∈ {512, 2048, 4096}`. The materialised and naive
//!   baselines stop at `n = 2048` for `d = 64` and at `n = 512` for `d = 128`, to keep
//!   the default run to a few minutes.
//!
//! Run with `cargo bench --bench score_kernel`; pass a filter such as `paths/causal` to
//! run one part.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use qkv::kernels::{FusedOptions, attention_fused, attention_materialized};
use qkv::{Mask, Matrix, Parallelism, Scalar, scaled_dot_product_attention};

/// Returns a `rows × cols` matrix of values in `[-1, 1)`, fixed by `seed`.
fn matrix<T: Scalar>(rows: usize, cols: usize, seed: u64) -> Matrix<T> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Matrix::from_fn(rows, cols, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        T::from((state >> 11) as f64 / (1u64 << 52) as f64 - 1.0).unwrap()
    })
    .unwrap()
}

/// Computes attention the textbook way, one query row at a time: every score, the row
/// max, the exponentials and their sum, then the weighted sum of the value rows.
fn naive<T: Scalar>(q: &Matrix<T>, k: &Matrix<T>, v: &Matrix<T>, causal: bool) -> Matrix<T> {
    let (n, d, d_v) = (q.rows(), q.cols(), v.cols());
    let scale = T::one() / T::from(d).unwrap().sqrt();
    let mut out = Matrix::zeros(n, d_v).unwrap();
    let mut scores = vec![T::zero(); k.rows()];
    for i in 0..n {
        let visible = if causal { i + 1 + k.rows() - n } else { k.rows() };
        let q_i = q.row(i).unwrap();
        for (j, s) in scores[..visible].iter_mut().enumerate() {
            let k_j = k.row(j).unwrap();
            *s = (0..d).fold(T::zero(), |acc, p| acc + q_i[p] * k_j[p]) * scale;
        }
        let max = scores[..visible].iter().fold(T::neg_infinity(), |m, &s| m.max(s));
        let mut sum = T::zero();
        for s in &mut scores[..visible] {
            *s = (*s - max).exp();
            sum = sum + *s;
        }
        let out_i = out.row_mut(i).unwrap();
        for (j, &w) in scores[..visible].iter().enumerate() {
            for (o, &x) in out_i.iter_mut().zip(v.row(j).unwrap()) {
                *o = *o + w / sum * x;
            }
        }
    }
    out
}

fn sdpa_type<T: Scalar>(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group(format!("sdpa/{name}"));
    group.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for n in [128, 512, 2048] {
        let (q, k, v) = (matrix::<T>(n, 64, 1), matrix::<T>(n, 64, 2), matrix::<T>(n, 64, 3));
        group.bench_with_input(BenchmarkId::new("qkv", n), &n, |b, _| {
            b.iter(|| scaled_dot_product_attention(black_box(&q), &k, &v, &Mask::None, None).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("naive", n), &n, |b, _| {
            b.iter(|| naive(black_box(&q), &k, &v, false));
        });
    }
    group.finish();
}

fn sdpa(c: &mut Criterion) {
    sdpa_type::<f32>(c, "f32");
    sdpa_type::<f64>(c, "f64");
}

fn paths(c: &mut Criterion) {
    for causal in [false, true] {
        for d in [64, 128] {
            let mut group = c.benchmark_group(format!("paths/{}/d{d}", if causal { "causal" } else { "full" }));
            group.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
            let mask = if causal { Mask::Causal } else { Mask::None };
            let scale = 1.0 / (d as f32).sqrt();
            for n in [512, 2048, 4096] {
                let (q, k, v) = (matrix::<f32>(n, d, 1), matrix::<f32>(n, d, 2), matrix::<f32>(n, d, 3));
                for threads in [1, 2] {
                    let parallelism = Parallelism::Threads(NonZeroUsize::new(threads).unwrap());
                    let options = FusedOptions { parallelism, ..FusedOptions::default() };
                    group.bench_with_input(BenchmarkId::new(format!("fused_{threads}t"), n), &n, |b, _| {
                        b.iter(|| {
                            attention_fused(black_box(q.view()), k.view(), v.view(), 1, 1, &mask, scale, options)
                        });
                    });
                }
                if n > 2048 || (d > 64 && n > 512) {
                    continue;
                }
                group.bench_with_input(BenchmarkId::new("materialized", n), &n, |b, _| {
                    b.iter(|| attention_materialized(black_box(q.view()), k.view(), v.view(), &mask, scale).unwrap());
                });
                group.bench_with_input(BenchmarkId::new("naive", n), &n, |b, _| {
                    b.iter(|| naive(black_box(&q), &k, &v, causal));
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, sdpa, paths);
criterion_main!(benches);
