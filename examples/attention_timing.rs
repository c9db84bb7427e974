//! Times one head of scaled dot-product attention on the fused path and prints one JSON
//! line per shape, for `scripts/compare_torch.py`.
//!
//! ```text
//! cargo run --release --example attention_timing -- --n 2048 --d 64 --causal --threads 1 --reps 10
//! ```
//!
//! Options: `--n` tokens (default 2048), `--d` head width (64), `--causal`, `--threads`
//! (1), `--f64` for double precision (default `f32`), `--reps` timed repetitions (10)
//! after one warm-up run, `--key-block` keys per block (the kernel's default). The line reports the fastest repetition in seconds.

use std::num::NonZeroUsize;
use std::time::Instant;

use qkv::kernels::{FusedOptions, attention_fused};
use qkv::{Mask, Matrix, Parallelism, Scalar};

struct Args {
    n: usize,
    d: usize,
    causal: bool,
    threads: usize,
    f64: bool,
    reps: usize,
    key_block: Option<NonZeroUsize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { n: 2048, d: 64, causal: false, threads: 1, f64: false, reps: 10, key_block: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            let value = it.next().ok_or(format!("{name} needs a value"))?;
            value.parse().map_err(|e| format!("invalid {name} value {value:?}: {e}"))
        };
        match flag.as_str() {
            "--n" => args.n = number("--n")?,
            "--d" => args.d = number("--d")?,
            "--threads" => args.threads = number("--threads")?,
            "--reps" => args.reps = number("--reps")?,
            "--key-block" => args.key_block = NonZeroUsize::new(number("--key-block")?),
            "--causal" => args.causal = true,
            "--f64" => args.f64 = true,
            other => return Err(format!("unknown option {other:?}; see the header of examples/attention_timing.rs")),
        }
    }
    Ok(args)
}

/// Returns an `n × d` matrix of pseudo-random values in `[-1, 1)`, the same on every run.
fn random_matrix<T: Scalar>(n: usize, d: usize, seed: u64) -> qkv::Result<Matrix<T>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Matrix::from_fn(n, d, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        T::from((state >> 11) as f64 / (1u64 << 52) as f64 - 1.0).unwrap_or_else(T::zero)
    })
}

fn time<T: Scalar>(args: &Args) -> qkv::Result<f64> {
    let q = random_matrix::<T>(args.n, args.d, 1)?;
    let k = random_matrix::<T>(args.n, args.d, 2)?;
    let v = random_matrix::<T>(args.n, args.d, 3)?;
    let mask = if args.causal { Mask::Causal } else { Mask::None };
    let scale = T::one() / T::from(args.d).unwrap_or_else(T::one).sqrt();
    let threads = NonZeroUsize::new(args.threads).unwrap_or(NonZeroUsize::MIN);
    let options = FusedOptions {
        parallelism: Parallelism::Threads(threads),
        key_block: args.key_block,
        ..FusedOptions::default()
    };

    let mut best = f64::INFINITY;
    for rep in 0..=args.reps {
        let start = Instant::now();
        let out = attention_fused(q.view(), k.view(), v.view(), 1, 1, &mask, scale, options)?;
        let seconds = start.elapsed().as_secs_f64();
        std::hint::black_box(out);
        if rep > 0 {
            best = best.min(seconds);
        }
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let seconds = if args.f64 { time::<f64>(&args)? } else { time::<f32>(&args)? };
    println!(
        "{{\"n\": {}, \"d\": {}, \"causal\": {}, \"threads\": {}, \"dtype\": \"{}\", \"seconds\": {:.6e}}}",
        args.n,
        args.d,
        args.causal,
        args.threads,
        if args.f64 { "f64" } else { "f32" },
        seconds
    );
    Ok(())
}
