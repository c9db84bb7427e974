//! Helpers shared by the decoding, grouped-query, cross-attention and batch tests:
//! seeded random layers, random masks, and a float64 multi-head reference built on
//! `common::reference`, which uses no code from the crate.

#![allow(dead_code)]

use qkv::{Mask, Matrix, MultiHeadAttention, Projection, Scalar};

use crate::common::reference::{self, Mat};

/// Head counts `(n_heads, n_kv_heads)` for multi-head, grouped-query and multi-query
/// attention.
pub const LAYOUTS: [(usize, usize); 6] = [(1, 1), (3, 3), (4, 2), (6, 2), (4, 1), (3, 1)];

/// A xorshift64* generator, so that a test's data follows from one seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Returns a value in `[-1, 1)` that `f32` represents exactly, so that `f32` and
    /// `f64` layers and the reference all start from the same numbers.
    pub fn uniform(&mut self) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (2.0 * unit - 1.0) as f32 as f64
    }

    /// Returns an integer in `0..n`, for a positive `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Returns a `rows × cols` matrix of [`Rng::uniform`] values.
    pub fn mat(&mut self, rows: usize, cols: usize) -> Mat {
        Mat::new(rows, cols, (0..rows * cols).map(|_| self.uniform()).collect())
    }

    pub fn vector(&mut self, len: usize) -> Vec<f64> {
        (0..len).map(|_| self.uniform()).collect()
    }
}

/// Converts a reference matrix to the crate's matrix of `T`.
pub fn to_matrix<T: Scalar>(m: &Mat) -> Matrix<T> {
    Matrix::from_vec(m.rows, m.cols, m.data.iter().map(|&x| T::from(x).unwrap()).collect()).unwrap()
}

/// Returns rows `start..end` of `m` as a new matrix.
pub fn rows<T: Scalar>(m: &Matrix<T>, start: usize, end: usize) -> Matrix<T> {
    m.view().row_range(start..end).unwrap().to_matrix()
}

/// The weights of one attention layer, in float64, with head counts and widths.
pub struct LayerWeights {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_head: usize,
    pub d_head_v: usize,
    pub w_q: Mat,
    pub b_q: Vec<f64>,
    pub w_k: Mat,
    pub b_k: Vec<f64>,
    pub w_v: Mat,
    pub b_v: Vec<f64>,
    pub output: Option<(Mat, Vec<f64>)>,
}

impl LayerWeights {
    /// Draws a layer whose queries read rows of width `d_model` and whose keys and
    /// values read rows of width `d_memory`, with an output projection to `d_out`
    /// when one is given.
    #[allow(clippy::too_many_arguments)]
    pub fn random(
        rng: &mut Rng,
        (n_heads, n_kv_heads): (usize, usize),
        d_model: usize,
        d_memory: usize,
        d_head: usize,
        d_head_v: usize,
        d_out: Option<usize>,
    ) -> Self {
        let (w_q, b_q) = (rng.mat(d_model, n_heads * d_head), rng.vector(n_heads * d_head));
        let (w_k, b_k) = (rng.mat(d_memory, n_kv_heads * d_head), rng.vector(n_kv_heads * d_head));
        let (w_v, b_v) = (rng.mat(d_memory, n_kv_heads * d_head_v), rng.vector(n_kv_heads * d_head_v));
        let output = d_out.map(|d| (rng.mat(n_heads * d_head_v, d), rng.vector(d)));
        Self { n_heads, n_kv_heads, d_head, d_head_v, w_q, b_q, w_k, b_k, w_v, b_v, output }
    }

    fn projections<T: Scalar>(&self) -> (Projection<T>, Projection<T>, Projection<T>) {
        let p = |w: &Mat, b: &[f64]| {
            let bias = b.iter().map(|&x| T::from(x).unwrap()).collect();
            Projection::new(to_matrix(w), Some(bias)).unwrap()
        };
        (p(&self.w_q, &self.b_q), p(&self.w_k, &self.b_k), p(&self.w_v, &self.b_v))
    }

    fn with_output<T: Scalar>(&self, layer: MultiHeadAttention<T>) -> MultiHeadAttention<T> {
        match &self.output {
            Some((w, b)) => {
                let bias = b.iter().map(|&x| T::from(x).unwrap()).collect();
                layer.with_output(Projection::new(to_matrix(w), Some(bias)).unwrap()).unwrap()
            }
            None => layer,
        }
    }

    /// Builds the layer with [`MultiHeadAttention::grouped`].
    pub fn self_attention<T: Scalar>(&self) -> MultiHeadAttention<T> {
        let (q, k, v) = self.projections();
        self.with_output(MultiHeadAttention::grouped(q, k, v, self.n_heads, self.n_kv_heads).unwrap())
    }

    /// Builds the layer with [`MultiHeadAttention::cross`].
    pub fn cross_attention<T: Scalar>(&self) -> MultiHeadAttention<T> {
        let (q, k, v) = self.projections();
        self.with_output(MultiHeadAttention::cross(q, k, v, self.n_heads, self.n_kv_heads).unwrap())
    }

    /// Returns the layer's output for queries from `x` over keys and values from
    /// `memory`, where query `i` sees key `j` iff `allowed(i, j)`.
    pub fn reference(&self, x: &Mat, memory: &Mat, allowed: impl Fn(usize, usize) -> bool) -> Mat {
        let q = affine(x, &self.w_q, &self.b_q);
        let k = affine(memory, &self.w_k, &self.b_k);
        let v = affine(memory, &self.w_v, &self.b_v);
        let group = self.n_heads / self.n_kv_heads;
        let scale = 1.0 / (self.d_head as f64).sqrt();

        let width = self.n_heads * self.d_head_v;
        let mut concat = Mat::new(x.rows, width, vec![0.0; x.rows * width]);
        for h in 0..self.n_heads {
            let g = h / group;
            let q_h = q.columns(h * self.d_head, (h + 1) * self.d_head);
            let k_g = k.columns(g * self.d_head, (g + 1) * self.d_head);
            let v_g = v.columns(g * self.d_head_v, (g + 1) * self.d_head_v);
            let (out_h, _) = reference::attention(&q_h, &k_g, &v_g, scale, &allowed);
            for i in 0..x.rows {
                for c in 0..self.d_head_v {
                    concat.data[i * width + h * self.d_head_v + c] = out_h.at(i, c);
                }
            }
        }

        match &self.output {
            Some((w, b)) => affine(&concat, w, b),
            None => concat,
        }
    }
}

/// Returns `x·w + b`.
pub fn affine(x: &Mat, w: &Mat, b: &[f64]) -> Mat {
    let mut y = reference::matmul(x, w);
    if y.cols > 0 {
        for row in y.data.chunks_exact_mut(y.cols) {
            for (value, bias) in row.iter_mut().zip(b) {
                *value += bias;
            }
        }
    }
    y
}

/// Returns whether query `i` sees key `j` under a bottom-right sliding window of
/// `window` keys.
pub fn in_window(i: usize, j: usize, q_len: usize, k_len: usize, window: usize) -> bool {
    let last = i as i64 + k_len as i64 - q_len as i64;
    (j as i64) <= last && (j as i64) > last - window as i64
}

/// A mask drawn for a test, with its rule written out independently of the crate.
#[derive(Debug, Clone)]
pub enum MaskCase {
    None,
    Causal,
    Window(usize),
    ValidKeys(Vec<bool>),
    Allowed(Vec<Vec<bool>>),
}

impl MaskCase {
    /// Draws a mask of any kind for `q_len` queries and `k_len` keys.
    pub fn random(rng: &mut Rng, q_len: usize, k_len: usize) -> Self {
        match rng.below(5) {
            0 => MaskCase::None,
            1 => MaskCase::Causal,
            2 => MaskCase::Window(1 + rng.below(4)),
            3 => MaskCase::ValidKeys((0..k_len).map(|_| rng.below(4) != 0).collect()),
            _ => MaskCase::Allowed((0..q_len).map(|_| (0..k_len).map(|_| rng.below(3) != 0).collect()).collect()),
        }
    }

    pub fn mask(&self) -> Mask {
        match self {
            MaskCase::None => Mask::None,
            MaskCase::Causal => Mask::Causal,
            MaskCase::Window(window) => Mask::SlidingWindow { window: *window },
            MaskCase::ValidKeys(valid) => Mask::ValidKeys(valid.clone()),
            MaskCase::Allowed(rows) => Mask::Allowed(Matrix::from_rows(rows).unwrap()),
        }
    }

    pub fn allows(&self, i: usize, j: usize, q_len: usize, k_len: usize) -> bool {
        match self {
            MaskCase::None => true,
            MaskCase::Causal => reference::causal(i, j, q_len, k_len),
            MaskCase::Window(window) => in_window(i, j, q_len, k_len, *window),
            MaskCase::ValidKeys(valid) => valid[j],
            MaskCase::Allowed(rows) => rows[i][j],
        }
    }
}

/// Asserts that every element of `actual` is within `tol · (1 + |expected|)` of
/// `expected`, naming the first element that is not.
pub fn assert_close<T: Scalar>(actual: &Matrix<T>, expected: &Mat, tol: f64, context: &str) {
    assert_eq!(actual.shape(), (expected.rows, expected.cols), "{context}: shapes differ");
    for i in 0..expected.rows {
        for j in 0..expected.cols {
            let (a, e) = (actual[(i, j)].to_f64().unwrap(), expected.at(i, j));
            assert!((a - e).abs() <= tol * (1.0 + e.abs()), "{context}: element ({i}, {j}) is {a}, expected {e}");
        }
    }
}

/// Asserts that `actual` equals rows `start..` of `full` bit for bit.
pub fn assert_rows_identical<T: Scalar>(actual: &Matrix<T>, full: &Matrix<T>, start: usize, context: &str) {
    for (r, row) in actual.rows_iter().enumerate() {
        let expected = full.row(start + r).unwrap();
        let same =
            row.iter().zip(expected).all(|(a, e)| a.to_f64().unwrap().to_bits() == e.to_f64().unwrap().to_bits());
        assert!(same, "{context}: row {} is {row:?}, the full forward gives {expected:?}", start + r);
    }
}
