//! Transformer self-attention on the CPU, with hand-written kernels and no tensor
//! library underneath.
//!
//! For token rows `X` (`n × d_model`), one head computes `Q = X·W_Q`, `K = X·W_K`,
//! `V = X·W_V` (each with an optional bias), scores `Q_i·K_j / √d_k`, a numerically
//! stable softmax over each row of scores, and the weighted sum of the rows of `V`.
//!
//! ```
//! use qkv::{Mask, Matrix, Projection, SelfAttention};
//!
//! // d_model = 4, d_k = d_v = 2.
//! let w_q = Matrix::from_rows(&[[1.0_f64, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])?;
//! let w_k = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])?;
//! let w_v = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])?;
//! let attn = SelfAttention::new(
//!     Projection::new(w_q, None)?,
//!     Projection::new(w_k, None)?,
//!     Projection::new(w_v, None)?,
//! )?;
//!
//! let x = Matrix::from_rows(&[[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0]])?;
//! let y = attn.forward(&x)?;
//! assert_eq!(y.shape(), (3, 2));
//! assert!((y[(0, 0)] - 0.5282736834).abs() < 1e-9);
//! # Ok::<(), qkv::Error>(())
//! ```
//!
//! # Numerical contract
//!
//! - The default scale is `1/√d_k`, with `d_k` the key width of one head. A scale set
//!   by the caller replaces it.
//! - A masked key gets weight exactly `0`, and a NaN in a masked key or value does not
//!   reach the output. A query with no visible key gets zero weights and a zero row.
//! - Causal masks align bottom-right: query `i` sees key `j` iff `j ≤ i + k_len − q_len`.
//! - Softmax subtracts the row maximum, so finite scores never overflow. A NaN or `+∞`
//!   score makes its row NaN.
//! - A row's result does not depend on the other rows computed with it, nor on the
//!   number of threads.
//! - Bad shapes return an [`Error`] that names them. The one panic on caller input is
//!   `Matrix`'s `Index` out of bounds, as with slices; [`Matrix::get`] is the checked
//!   form.

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod attention;
mod error;
mod exp;
mod isa;
mod matmul;
mod matrix;
mod parallel;
mod projection;
mod scalar;
mod softmax;

pub use attention::{
    KvCache, Mask, MultiHeadAttention, SelfAttention, scaled_dot_product_attention,
    scaled_dot_product_attention_weights,
};
pub use error::{Error, Result};
#[doc(hidden)]
pub use matmul::{GemmKernel, gemm_with_kernel};
pub use matrix::{Matrix, MatrixView};
pub use parallel::Parallelism;
pub use projection::Projection;
pub use scalar::Scalar;
pub use softmax::{log_softmax_in_place, log_sum_exp, softmax_in_place, softmax_rows};

/// Kernel entry points with an explicit instruction set and block size, for the crate's
/// tests and benchmarks. Not part of the stable API.
#[doc(hidden)]
pub mod kernels {
    pub use crate::attention::kernel::{FusedOptions, attention_fused, attention_materialized};
    pub use crate::exp::{exp_f32_with, exp_f64_with, exp2_f32_with, exp2_f64_with};
    pub use crate::isa::Isa;
}
