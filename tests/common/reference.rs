//! A plain float64 reference for matrix products and attention, written with triple
//! loops and no code from the crate, so that it can serve as the expected value.

#![allow(clippy::needless_range_loop)]

/// A row-major float64 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Mat {
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(data.len(), rows * cols);
        Self { rows, cols, data }
    }

    pub fn from_matrix<T: qkv::Scalar>(m: &qkv::Matrix<T>) -> Self {
        Self::new(m.rows(), m.cols(), m.as_slice().iter().map(|x| x.to_f64().unwrap()).collect())
    }

    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn transpose(&self) -> Self {
        let mut data = Vec::with_capacity(self.data.len());
        for j in 0..self.cols {
            for i in 0..self.rows {
                data.push(self.at(i, j));
            }
        }
        Self::new(self.cols, self.rows, data)
    }

    pub fn columns(&self, start: usize, end: usize) -> Self {
        let mut data = Vec::new();
        for i in 0..self.rows {
            data.extend_from_slice(&self.row(i)[start..end]);
        }
        Self::new(self.rows, end - start, data)
    }
}

/// Returns `a · b` by the textbook triple loop.
pub fn matmul(a: &Mat, b: &Mat) -> Mat {
    assert_eq!(a.cols, b.rows);
    let mut data = vec![0.0; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut sum = 0.0;
            for p in 0..a.cols {
                sum += a.at(i, p) * b.at(p, j);
            }
            data[i * b.cols + j] = sum;
        }
    }
    Mat::new(a.rows, b.cols, data)
}

/// Returns `x · w + bias` with `w` stored `d_out × d_in` (PyTorch's `nn.Linear`).
pub fn linear(x: &Mat, w_out_in: &Mat, bias: Option<&[f64]>) -> Mat {
    let mut y = matmul(x, &w_out_in.transpose());
    if let Some(b) = bias {
        for i in 0..y.rows {
            for j in 0..y.cols {
                y.data[i * y.cols + j] += b[j];
            }
        }
    }
    y
}

/// Returns `(output, weights)` of one attention head: `softmax(scale · q·kᵀ) · v`
/// over the keys `allowed(i, j)` admits, with zero weights and a zero row where a
/// query admits no key.
pub fn attention(q: &Mat, k: &Mat, v: &Mat, scale: f64, allowed: impl Fn(usize, usize) -> bool) -> (Mat, Mat) {
    let (n_q, n_k, d_v) = (q.rows, k.rows, v.cols);
    let mut weights = vec![0.0; n_q * n_k];
    let mut out = vec![0.0; n_q * d_v];
    for i in 0..n_q {
        let scores: Vec<Option<f64>> = (0..n_k)
            .map(|j| allowed(i, j).then(|| scale * (0..q.cols).map(|p| q.at(i, p) * k.at(j, p)).sum::<f64>()))
            .collect();
        let max = scores.iter().flatten().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            continue;
        }
        let exps: Vec<f64> = scores.iter().map(|s| s.map_or(0.0, |s| (s - max).exp())).collect();
        let sum: f64 = exps.iter().sum();
        for j in 0..n_k {
            if scores[j].is_none() {
                continue;
            }
            let w = exps[j] / sum;
            weights[i * n_k + j] = w;
            for c in 0..d_v {
                out[i * d_v + c] += w * v.at(j, c);
            }
        }
    }
    (Mat::new(n_q, d_v, out), Mat::new(n_q, n_k, weights))
}

/// Returns whether query `i` sees key `j` under bottom-right causal alignment.
pub fn causal(i: usize, j: usize, q_len: usize, k_len: usize) -> bool {
    (j as i64) <= i as i64 + k_len as i64 - q_len as i64
}
