//! `MultiHeadAttention`: several heads over column blocks of one set of projections,
//! concatenated and optionally projected again.

use crate::attention::kernel::HeadLayout;
use crate::attention::mask::Mask;
use crate::attention::{check_scale, default_scale, kernel};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::parallel::Parallelism;
use crate::projection::Projection;
use crate::scalar::Scalar;

/// Multi-head self-attention over token rows `X` (`n × d_model`).
///
/// The query, key and value projections each produce `n_heads` heads side by side:
/// head `h` owns columns `h·d_head .. (h+1)·d_head` of Q, K and V and of the
/// concatenated output, the layout PyTorch and Hugging Face models use. Each head runs
/// [`SelfAttention`](crate::SelfAttention)'s computation with scale `1/√d_head`, and
/// the concatenation goes through the output projection when one is set.
///
/// ```
/// use qkv::{Matrix, MultiHeadAttention, Projection};
///
/// let d_model = 8;
/// let w = |seed: f64| Matrix::from_fn(d_model, d_model, |i, j| ((i * 7 + j * 3) as f64 * seed).sin());
/// let mha = MultiHeadAttention::new(
///     Projection::new(w(0.1)?, None)?,
///     Projection::new(w(0.2)?, None)?,
///     Projection::new(w(0.3)?, None)?,
///     2,
/// )?;
/// assert_eq!(mha.d_head(), 4);
///
/// let x = Matrix::from_fn(5, d_model, |i, j| (i as f64 - j as f64) / 10.0)?;
/// let (y, weights) = mha.forward_with_weights(&x)?;
/// assert_eq!(y.shape(), (5, 8));
/// assert_eq!(weights.len(), 2);
/// for row in weights[1].rows_iter() {
///     assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// }
/// # Ok::<(), qkv::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MultiHeadAttention<T> {
    query: Projection<T>,
    key: Projection<T>,
    value: Projection<T>,
    output: Option<Projection<T>>,
    n_heads: usize,
    scale: T,
    mask: Mask,
    parallelism: Parallelism,
}

impl<T: Scalar> MultiHeadAttention<T> {
    /// Creates a layer of `n_heads` heads from its query, key and value projections,
    /// with no output projection.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroHeads`] when `n_heads` is zero, [`Error::ProjectionInputs`] when
    /// the input widths differ, [`Error::QueryKeyWidth`] when the query and key widths
    /// differ, [`Error::HeadsDivide`] when a width is not a multiple of `n_heads`, and
    /// [`Error::ZeroKeyWidth`] when the head width is zero.
    ///
    /// ```
    /// use qkv::{Error, Matrix, MultiHeadAttention, Projection};
    ///
    /// let p = |d_out| Projection::new(Matrix::<f32>::zeros(12, d_out).unwrap(), None).unwrap();
    /// let err = MultiHeadAttention::new(p(12), p(12), p(12), 5).unwrap_err();
    /// assert_eq!(err.to_string(), "query width 12 is not divisible by 5 heads");
    /// assert_eq!(MultiHeadAttention::new(p(12), p(12), p(12), 0).unwrap_err(), Error::ZeroHeads);
    /// ```
    pub fn new(query: Projection<T>, key: Projection<T>, value: Projection<T>, n_heads: usize) -> Result<Self> {
        if n_heads == 0 {
            return Err(Error::ZeroHeads);
        }
        if query.d_in() != key.d_in() || query.d_in() != value.d_in() {
            return Err(Error::ProjectionInputs { query: query.d_in(), key: key.d_in(), value: value.d_in() });
        }
        if query.d_out() != key.d_out() {
            return Err(Error::QueryKeyWidth { query: query.d_out(), key: key.d_out() });
        }
        for (what, width) in [("query", query.d_out()), ("key", key.d_out()), ("value", value.d_out())] {
            if width % n_heads != 0 {
                return Err(Error::HeadsDivide { what, width, heads: n_heads });
            }
        }
        let d_head = key.d_out() / n_heads;
        if d_head == 0 {
            return Err(Error::ZeroKeyWidth);
        }

        Ok(Self {
            query,
            key,
            value,
            output: None,
            n_heads,
            scale: default_scale(d_head),
            mask: Mask::None,
            parallelism: Parallelism::Auto,
        })
    }

    /// Sets the output projection applied to the concatenated heads.
    ///
    /// # Errors
    ///
    /// [`Error::OutputInput`] when its input width differs from `n_heads · d_head_v`,
    /// the value projection's width.
    ///
    /// ```
    /// # use qkv::{Matrix, MultiHeadAttention, Projection};
    /// # let p = |d_out| Projection::new(Matrix::<f32>::zeros(8, d_out).unwrap(), None).unwrap();
    /// let mha = MultiHeadAttention::new(p(8), p(8), p(8), 2)?;
    /// let mha = mha.with_output(Projection::new(Matrix::zeros(8, 3)?, None)?)?;
    /// assert_eq!(mha.forward(&Matrix::zeros(4, 8)?)?.shape(), (4, 3));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn with_output(self, output: Projection<T>) -> Result<Self> {
        if output.d_in() != self.value.d_out() {
            return Err(Error::OutputInput { expected: self.value.d_out(), found: output.d_in() });
        }
        Ok(Self { output: Some(output), ..self })
    }

    /// Replaces the score scale `1/√d_head` with `scale`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScale`] unless `scale` is finite and positive.
    pub fn with_scale(self, scale: T) -> Result<Self> {
        Ok(Self { scale: check_scale(scale)?, ..self })
    }

    /// Sets the mask that [`MultiHeadAttention::forward`] applies to every head.
    #[must_use]
    pub fn with_mask(self, mask: Mask) -> Self {
        Self { mask, ..self }
    }

    /// Sets how many threads the layer may use.
    #[must_use]
    pub fn with_parallelism(self, parallelism: Parallelism) -> Self {
        Self { parallelism, ..self }
    }

    /// Returns the number of heads.
    #[must_use]
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// Returns the query and key width of one head, `d_head`.
    #[must_use]
    pub fn d_head(&self) -> usize {
        self.key.d_out() / self.n_heads
    }

    /// Returns the input width `d_model`.
    #[must_use]
    pub fn d_model(&self) -> usize {
        self.query.d_in()
    }

    /// Returns the output width: the output projection's `d_out` when one is set,
    /// otherwise the concatenated value width.
    #[must_use]
    pub fn d_out(&self) -> usize {
        self.output.as_ref().map_or(self.value.d_out(), Projection::d_out)
    }

    /// Returns the score scale in use.
    #[must_use]
    pub fn scale(&self) -> T {
        self.scale
    }

    /// Runs the layer on `x` (`n × d_model`) with the configured mask, giving
    /// `n × d_out`.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `x.cols() != d_model`, and the errors of
    /// [`Mask::check`] when the mask does not fit `n × n`.
    pub fn forward(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
        self.forward_masked(x, &self.mask)
    }

    /// Runs the layer on `x` and also returns each head's `n × n` weights, head 0
    /// first.
    ///
    /// # Errors
    ///
    /// The same as [`MultiHeadAttention::forward`].
    pub fn forward_with_weights(&self, x: &Matrix<T>) -> Result<(Matrix<T>, Vec<Matrix<T>>)> {
        self.forward_masked_with_weights(x, &self.mask)
    }

    /// Runs the layer on `x` with `mask` in place of the configured one.
    ///
    /// # Errors
    ///
    /// The same as [`MultiHeadAttention::forward`].
    ///
    /// ```
    /// # use qkv::{Mask, Matrix, MultiHeadAttention, Projection};
    /// # let p = |d_out| Projection::new(Matrix::<f64>::zeros(4, d_out).unwrap(), None).unwrap();
    /// let mha = MultiHeadAttention::new(p(4), p(4), p(4), 2)?;
    /// let x = Matrix::zeros(3, 4)?;
    /// let y = mha.forward_masked(&x, &Mask::from_key_padding(&[false, false, true]))?;
    /// assert_eq!(y.shape(), (3, 4));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_masked(&self, x: &Matrix<T>, mask: &Mask) -> Result<Matrix<T>> {
        self.run(x, mask, false).map(|(out, _)| out)
    }

    /// Runs the layer on `x` with `mask` and also returns each head's weights.
    ///
    /// # Errors
    ///
    /// The same as [`MultiHeadAttention::forward`], plus [`Error::ShapeOverflow`] when
    /// `n · n` overflows `usize`.
    pub fn forward_masked_with_weights(&self, x: &Matrix<T>, mask: &Mask) -> Result<(Matrix<T>, Vec<Matrix<T>>)> {
        self.run(x, mask, true)
    }

    fn run(&self, x: &Matrix<T>, mask: &Mask, with_weights: bool) -> Result<(Matrix<T>, Vec<Matrix<T>>)> {
        let n = x.rows();
        if x.cols() != self.d_model() {
            return Err(Error::InputWidth { expected: self.d_model(), found: x.cols() });
        }
        mask.check(n, n)?;

        let q = self.query.forward_view(x.view(), self.parallelism)?;
        let k = self.key.forward_view(x.view(), self.parallelism)?;
        let v = self.value.forward_view(x.view(), self.parallelism)?;

        let layout = HeadLayout {
            n_heads: self.n_heads,
            n_kv_heads: self.n_heads,
            d_head: self.d_head(),
            d_head_v: self.value.d_out() / self.n_heads,
        };
        let mut concat = Matrix::zeros(n, self.value.d_out())?;
        let mut all_weights = Vec::new();
        kernel::attend_heads(
            q.view(),
            k.view(),
            v.view(),
            layout,
            mask,
            self.scale,
            &mut concat,
            with_weights.then_some(&mut all_weights),
            self.parallelism,
        )?;

        let out = match &self.output {
            Some(output) => output.forward_view(concat.view(), self.parallelism)?,
            None => concat,
        };
        Ok((out, all_weights))
    }
}
