//! Runs one `f32` scaled dot-product attention forward on `n × d` inputs, for measuring
//! the peak resident memory of the fused path:
//!
//! ```text
//! cargo build --release --example peak_memory
//! /usr/bin/time -v target/release/examples/peak_memory 16384 64
//! ```
//!
//! It prints the bytes of Q, K, V and the output. Compare them with the "Maximum
//! resident set size" that `time -v` reports: a materialised `n × n` score matrix alone
//! would take `4·n²` bytes, 1 GiB at `n = 16384`.

use qkv::{Mask, Matrix, scaled_dot_product_attention};

/// Returns an `n × d` matrix of values in `[-1, 1)`, filled in place.
fn matrix(n: usize, d: usize, seed: u32) -> qkv::Result<Matrix<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    Matrix::from_fn(n, d, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(16384), |s| s.parse())?;
    let d: usize = args.next().map_or(Ok(64), |s| s.parse())?;

    let q = matrix(n, d, 1)?;
    let k = matrix(n, d, 2)?;
    let v = matrix(n, d, 3)?;
    let out = scaled_dot_product_attention(&q, &k, &v, &Mask::None, None)?;

    let bytes = |m: &Matrix<f32>| size_of_val(m.as_slice());
    let total = bytes(&q) + bytes(&k) + bytes(&v) + bytes(&out);
    println!("n = {n}, d = {d}: inputs and output take {total} bytes ({:.1} MiB)", total as f64 / (1 << 20) as f64);
    println!("checksum {}", out.as_slice().iter().map(|&x| x as f64).sum::<f64>());
    Ok(())
}
