//! Sampled decoding with a small random-weight decoder: a prompt goes through in one
//! call that fills each layer's key/value cache (prefill), then tokens follow one at a
//! time, and the time of every step is printed.
//!
//! The model is an embedding table, two residual blocks of grouped-query attention
//! (8 query heads share 2 key/value heads) and an unembedding matrix that gives the
//! logits. Each next token is drawn from the softmax of the logits. The weights and the
//! draws come from a seeded xorshift generator, so every run prints the same tokens. At the end the last step's logits are checked against a full causal
//! forward over the whole sequence, which they equal bit for bit.
//!
//! Run it with `cargo run --release --example decode`.

use std::time::Instant;

use qkv::{KvCache, Mask, Matrix, MultiHeadAttention, Projection, softmax_in_place};

const VOCAB: usize = 64;
const D_MODEL: usize = 64;
const N_LAYERS: usize = 2;
const N_HEADS: usize = 8;
const N_KV_HEADS: usize = 2;
const D_HEAD: usize = D_MODEL / N_HEADS;
const PROMPT_LEN: usize = 24;
const NEW_TOKENS: usize = 32;

/// A xorshift64 generator, good enough for weights that only need to look random.
struct XorShift(u64);

impl XorShift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // The top 24 bits as a uniform value in [-1, 1).
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Draws an index with probability `softmax(logits)`.
    fn sample(&mut self, logits: &[f32]) -> usize {
        let mut probabilities = logits.to_vec();
        softmax_in_place(&mut probabilities);
        let mut remaining = 0.5 * (self.next_f32() + 1.0);
        for (i, p) in probabilities.iter().enumerate() {
            remaining -= p;
            if remaining < 0.0 {
                return i;
            }
        }
        probabilities.len() - 1
    }

    fn matrix(&mut self, rows: usize, cols: usize, scale: f32) -> qkv::Result<Matrix<f32>> {
        Matrix::from_fn(rows, cols, |_, _| scale * self.next_f32())
    }
}

struct Model {
    embedding: Matrix<f32>,
    layers: Vec<MultiHeadAttention<f32>>,
    unembedding: Matrix<f32>,
}

impl Model {
    fn random(rng: &mut XorShift) -> qkv::Result<Self> {
        let embedding = rng.matrix(VOCAB, D_MODEL, 1.0)?;
        let scale = 1.0 / (D_MODEL as f32).sqrt();
        let mut layers = Vec::with_capacity(N_LAYERS);
        for _ in 0..N_LAYERS {
            let mut projection = |d_out| Projection::new(rng.matrix(D_MODEL, d_out, scale)?, None);
            let (query, key, value) =
                (projection(D_MODEL)?, projection(N_KV_HEADS * D_HEAD)?, projection(N_KV_HEADS * D_HEAD)?);
            let output = projection(D_MODEL)?;
            layers.push(MultiHeadAttention::grouped(query, key, value, N_HEADS, N_KV_HEADS)?.with_output(output)?);
        }
        let unembedding = rng.matrix(D_MODEL, VOCAB, scale)?;
        Ok(Self { embedding, layers, unembedding })
    }

    /// Returns the embedding rows of `tokens`, `tokens.len() × d_model`.
    fn embed(&self, tokens: &[usize]) -> qkv::Result<Matrix<f32>> {
        let rows: Vec<&[f32]> = tokens.iter().map(|&t| self.embedding.row(t).unwrap_or(&[])).collect();
        Matrix::from_rows(&rows)
    }

    /// Runs the new `tokens` through every layer, appending to the caches, and returns
    /// the logits of the last token.
    fn step(&self, tokens: &[usize], caches: &mut [KvCache<f32>]) -> qkv::Result<Vec<f32>> {
        let mut x = self.embed(tokens)?;
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            let attended = layer.forward_cached(&x, cache)?;
            add_in_place(&mut x, &attended);
        }
        self.logits(&x)
    }

    /// Runs the whole sequence with a causal mask, without caches, and returns the
    /// logits of its last token.
    fn full_forward(&self, tokens: &[usize]) -> qkv::Result<Vec<f32>> {
        let mut x = self.embed(tokens)?;
        for layer in &self.layers {
            let attended = layer.forward_masked(&x, &Mask::Causal)?;
            add_in_place(&mut x, &attended);
        }
        self.logits(&x)
    }

    /// Returns the last row of `x` times the unembedding matrix.
    fn logits(&self, x: &Matrix<f32>) -> qkv::Result<Vec<f32>> {
        let last = x.view().row_range(x.rows() - 1..x.rows())?;
        Ok(last.matmul(self.unembedding.view())?.into_vec())
    }
}

fn add_in_place(x: &mut Matrix<f32>, y: &Matrix<f32>) {
    for (a, b) in x.as_mut_slice().iter_mut().zip(y.as_slice()) {
        *a += b;
    }
}

fn main() -> qkv::Result<()> {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let model = Model::random(&mut rng)?;
    let mut caches: Vec<KvCache<f32>> =
        model.layers.iter().map(|layer| layer.kv_cache(PROMPT_LEN + NEW_TOKENS)).collect::<qkv::Result<_>>()?;

    let mut tokens: Vec<usize> = (0..PROMPT_LEN).map(|i| (i * 7 + 3) % VOCAB).collect();
    println!(
        "model: {N_LAYERS} layers, d_model {D_MODEL}, {N_HEADS} query heads sharing {N_KV_HEADS} key/value heads, vocabulary {VOCAB}"
    );

    let start = Instant::now();
    let mut logits = model.step(&tokens, &mut caches)?;
    println!("prefill of {PROMPT_LEN} tokens: {:.1} µs", start.elapsed().as_secs_f64() * 1e6);

    for _ in 0..NEW_TOKENS {
        let next = rng.sample(&logits);
        tokens.push(next);
        let start = Instant::now();
        logits = model.step(&[next], &mut caches)?;
        let micros = start.elapsed().as_secs_f64() * 1e6;
        println!("step at position {:>3}: token {next:>2}, {micros:>7.1} µs", tokens.len() - 1);
    }

    let start = Instant::now();
    let recomputed = model.full_forward(&tokens)?;
    let full_micros = start.elapsed().as_secs_f64() * 1e6;
    let identical = logits.iter().zip(&recomputed).all(|(a, b)| a.to_bits() == b.to_bits());
    println!("full forward over all {} tokens: {full_micros:.1} µs", tokens.len());
    println!("last step's logits equal the full forward's bit for bit: {identical}");
    Ok(())
}
