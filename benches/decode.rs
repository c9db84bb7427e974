//! Decoding-step time as the key/value cache grows, beside recomputing the full causal
//! forward for every step.
//!
//! The layer has 12 heads of width 64 (`d_model = 768`, as in GPT-2 small) in `f32`,
//! without an output projection. `cached/L` times one step that appends token `L` to a
//! cache of `L − 1` tokens and attends over all `L`. `full_forward/L` times the full
//! causal forward over `L` tokens, which a decoder without a cache runs for each step.
//! The full forward is measured up to `FULL_FORWARD_MAX` tokens because it grows
//! quadratically; set `QKV_BENCH_FULL_MAX` to measure it further.
//!
//! Run with `cargo bench --bench decode`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use qkv::{Mask, Matrix, MultiHeadAttention, Projection};

const N_HEADS: usize = 12;
const D_HEAD: usize = 64;
const D_MODEL: usize = N_HEADS * D_HEAD;
const CACHE_LENS: [usize; 7] = [128, 256, 512, 1024, 2048, 4096, 8192];
const FULL_FORWARD_MAX: usize = 512;

/// Returns a `rows × cols` matrix of deterministic values in about `[-scale, scale]`.
fn pseudo_random(rows: usize, cols: usize, seed: u64, scale: f32) -> Matrix<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Matrix::from_fn(rows, cols, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        scale * ((state >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
    })
    .expect("benchmark shapes fit in memory")
}

fn layer() -> MultiHeadAttention<f32> {
    let scale = 1.0 / (D_MODEL as f32).sqrt();
    let projection = |seed| Projection::new(pseudo_random(D_MODEL, D_MODEL, seed, scale), None).unwrap();
    MultiHeadAttention::new(projection(1), projection(2), projection(3), N_HEADS).unwrap()
}

fn decode_step(c: &mut Criterion) {
    let layer = layer();
    let full_max = std::env::var("QKV_BENCH_FULL_MAX").ok().and_then(|s| s.parse().ok()).unwrap_or(FULL_FORWARD_MAX);
    let max_len = CACHE_LENS.iter().copied().max().unwrap_or(0);
    let tokens = pseudo_random(max_len, D_MODEL, 4, 1.0);

    let mut group = c.benchmark_group("decode_step_12x64_f32");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));

    // One prefill serves every size, because a cache truncated to L − 1 tokens contains
    // what a prefill of those tokens would. So the sizes run from the largest down.
    let mut cache = layer.kv_cache(max_len).unwrap();
    layer.forward_cached(&tokens.view().row_range(0..max_len - 1).unwrap().to_matrix(), &mut cache).unwrap();

    for len in CACHE_LENS.into_iter().rev() {
        cache.truncate(len - 1);
        let token = tokens.view().row_range(len - 1..len).unwrap().to_matrix();
        group.bench_with_input(BenchmarkId::new("cached", len), &len, |b, _| {
            b.iter(|| {
                let out = layer.forward_cached(black_box(&token), &mut cache).unwrap();
                cache.truncate(len - 1);
                out
            });
        });

        if len <= full_max {
            let sequence = tokens.view().row_range(0..len).unwrap().to_matrix();
            group.bench_with_input(BenchmarkId::new("full_forward", len), &len, |b, _| {
                b.iter(|| layer.forward_masked(black_box(&sequence), &Mask::Causal).unwrap());
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decode_step);
criterion_main!(benches);
