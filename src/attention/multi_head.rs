//! `MultiHeadAttention`: several heads over column blocks of one set of projections,
//! concatenated and optionally projected again. Query heads may share key/value heads
//! (grouped-query and multi-query attention).

use crate::attention::kernel::HeadLayout;
use crate::attention::mask::Mask;
use crate::attention::{check_scale, default_scale, kernel};
use crate::error::{Error, Result};
use crate::matrix::{Matrix, MatrixView};
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
/// With [`MultiHeadAttention::grouped`], `n_kv_heads` key/value heads serve
/// `n_heads` query heads: query head `h` reads key/value head
/// `h / (n_heads / n_kv_heads)` in place, without copying it. One key/value head gives
/// multi-query attention.
///
/// Besides the full forward, a layer decodes incrementally over a
/// [`KvCache`](crate::KvCache) ([`MultiHeadAttention::forward_cached`]), attends
/// from one sequence to another ([`MultiHeadAttention::cross`]), and runs batches of
/// sequences of different lengths ([`MultiHeadAttention::forward_batch`]).
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
    pub(super) query: Projection<T>,
    pub(super) key: Projection<T>,
    pub(super) value: Projection<T>,
    pub(super) output: Option<Projection<T>>,
    pub(super) n_heads: usize,
    pub(super) n_kv_heads: usize,
    pub(super) scale: T,
    pub(super) mask: Mask,
    pub(super) parallelism: Parallelism,
}

impl<T: Scalar> MultiHeadAttention<T> {
    /// Creates a layer of `n_heads` heads from its query, key and value projections,
    /// with no output projection.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroHeads`] when `n_heads` is zero, [`Error::ProjectionInputs`] when
    /// the input widths differ, [`Error::HeadsDivide`] when a width is not a multiple
    /// of `n_heads`, [`Error::QueryKeyWidth`] when the query and key head widths
    /// differ, and [`Error::ZeroKeyWidth`] when the head width is zero.
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
        Self::grouped(query, key, value, n_heads, n_heads)
    }

    /// Creates a layer of `n_heads` query heads that share `n_kv_heads` key/value heads,
    /// with no output projection.
    ///
    /// The query projection has width `n_heads · d_head`, the key projection
    /// `n_kv_heads · d_head` and the value projection `n_kv_heads · d_head_v`. Query
    /// head `h` attends with key/value head `h / (n_heads / n_kv_heads)`, which gives
    /// the same result as multi-head attention with each key/value head repeated
    /// `n_heads / n_kv_heads` times. `n_kv_heads == n_heads` is multi-head attention and
    /// `n_kv_heads == 1` is multi-query attention.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroHeads`] when either head count is zero, [`Error::KvHeadsDivide`]
    /// when `n_kv_heads` does not divide `n_heads`, and otherwise the errors of
    /// [`MultiHeadAttention::new`], with the key and value widths divided by
    /// `n_kv_heads`.
    ///
    /// ```
    /// use qkv::{Error, Matrix, MultiHeadAttention, Projection};
    ///
    /// let p = |d_out| Projection::new(Matrix::<f32>::zeros(16, d_out).unwrap(), None).unwrap();
    /// // 4 query heads of width 4 share 2 key/value heads.
    /// let gqa = MultiHeadAttention::grouped(p(16), p(8), p(8), 4, 2)?;
    /// assert_eq!((gqa.d_head(), gqa.key_width(), gqa.d_out()), (4, 8, 16));
    ///
    /// let err = MultiHeadAttention::grouped(p(16), p(12), p(12), 4, 3).unwrap_err();
    /// assert_eq!(err, Error::KvHeadsDivide { n_heads: 4, n_kv_heads: 3 });
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn grouped(
        query: Projection<T>,
        key: Projection<T>,
        value: Projection<T>,
        n_heads: usize,
        n_kv_heads: usize,
    ) -> Result<Self> {
        check_head_counts(n_heads, n_kv_heads)?;
        if query.d_in() != key.d_in() || query.d_in() != value.d_in() {
            return Err(Error::ProjectionInputs { query: query.d_in(), key: key.d_in(), value: value.d_in() });
        }
        Self::from_parts(query, key, value, n_heads, n_kv_heads)
    }

    /// Checks the head widths and builds the layer. The caller has checked the head
    /// counts and the projections' input widths.
    pub(super) fn from_parts(
        query: Projection<T>,
        key: Projection<T>,
        value: Projection<T>,
        n_heads: usize,
        n_kv_heads: usize,
    ) -> Result<Self> {
        let widths =
            [("query", query.d_out(), n_heads), ("key", key.d_out(), n_kv_heads), ("value", value.d_out(), n_kv_heads)];
        for (what, width, heads) in widths {
            if !width.is_multiple_of(heads) {
                return Err(Error::HeadsDivide { what, width, heads });
            }
        }
        let d_head = query.d_out() / n_heads;
        if key.d_out() / n_kv_heads != d_head {
            return Err(Error::QueryKeyWidth { query: d_head, key: key.d_out() / n_kv_heads });
        }
        if d_head == 0 {
            return Err(Error::ZeroKeyWidth);
        }

        Ok(Self {
            query,
            key,
            value,
            output: None,
            n_heads,
            n_kv_heads,
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
    /// the width of the concatenated heads.
    ///
    /// ```
    /// use qkv::{Matrix, MultiHeadAttention, Projection};
    /// let p = |d_out| Projection::new(Matrix::<f32>::zeros(8, d_out).unwrap(), None).unwrap();
    /// let mha = MultiHeadAttention::new(p(8), p(8), p(8), 2)?;
    /// let mha = mha.with_output(Projection::new(Matrix::zeros(8, 3)?, None)?)?;
    /// assert_eq!(mha.forward(&Matrix::zeros(4, 8)?)?.shape(), (4, 3));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn with_output(self, output: Projection<T>) -> Result<Self> {
        if output.d_in() != self.concat_width() {
            return Err(Error::OutputInput { expected: self.concat_width(), found: output.d_in() });
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

    /// Sets how many threads the layer may use; the default is [`Parallelism::Auto`].
    #[must_use]
    pub fn with_parallelism(self, parallelism: Parallelism) -> Self {
        Self { parallelism, ..self }
    }

    /// Returns the number of heads.
    #[must_use]
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// Returns the number of key/value heads, `n_kv_heads`.
    ///
    /// It equals [`MultiHeadAttention::n_heads`] unless the layer was built with
    /// [`MultiHeadAttention::grouped`] or [`MultiHeadAttention::cross`].
    #[must_use]
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }

    /// Returns the query and key width of one head, `d_head`.
    #[must_use]
    pub fn d_head(&self) -> usize {
        self.query.d_out() / self.n_heads
    }

    /// Returns the value width of one head, `d_head_v`.
    #[must_use]
    pub fn d_head_v(&self) -> usize {
        self.value.d_out() / self.n_kv_heads
    }

    /// Returns the width of the projected keys, `n_kv_heads · d_head`: the key row
    /// width of a [`KvCache`](crate::KvCache) for this layer.
    #[must_use]
    pub fn key_width(&self) -> usize {
        self.key.d_out()
    }

    /// Returns the width of the projected values, `n_kv_heads · d_head_v`: the value
    /// row width of a [`KvCache`](crate::KvCache) for this layer.
    #[must_use]
    pub fn value_width(&self) -> usize {
        self.value.d_out()
    }

    /// Returns the input width `d_model`.
    #[must_use]
    pub fn d_model(&self) -> usize {
        self.query.d_in()
    }

    /// Returns the output width: the output projection's `d_out` when one is set,
    /// otherwise the concatenated head width `n_heads · d_head_v`.
    #[must_use]
    pub fn d_out(&self) -> usize {
        self.output.as_ref().map_or(self.concat_width(), Projection::d_out)
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
    /// use qkv::{Mask, Matrix, MultiHeadAttention, Projection};
    /// let p = |d_out| Projection::new(Matrix::<f64>::zeros(4, d_out).unwrap(), None).unwrap();
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
        self.check_input(x, mask)?;
        let mut all_weights = Vec::new();
        let out = self.run_checked(x, mask, with_weights.then_some(&mut all_weights), self.parallelism)?;
        Ok((out, all_weights))
    }

    /// Returns [`Error::InputWidth`] unless `x` is `n × d_model`, and the errors of
    /// [`Mask::check`] unless `mask` fits `n × n`.
    pub(super) fn check_input(&self, x: &Matrix<T>, mask: &Mask) -> Result<()> {
        self.check_self_input(x)?;
        mask.check(x.rows(), x.rows())
    }

    /// Returns [`Error::InputWidth`] unless every projection reads rows as wide as `x`,
    /// which fails for a cross-attention layer whose memory is wider or narrower than
    /// its queries.
    pub(super) fn check_self_input(&self, x: &Matrix<T>) -> Result<()> {
        for expected in [self.query.d_in(), self.key.d_in()] {
            if x.cols() != expected {
                return Err(Error::InputWidth { expected, found: x.cols() });
            }
        }
        Ok(())
    }

    /// Runs self-attention on `x`, which [`Self::check_input`] has accepted with `mask`.
    pub(super) fn run_checked(
        &self,
        x: &Matrix<T>,
        mask: &Mask,
        weights: Option<&mut Vec<Matrix<T>>>,
        parallelism: Parallelism,
    ) -> Result<Matrix<T>> {
        let q = self.query.forward_view(x.view(), parallelism)?;
        let k = self.key.forward_view(x.view(), parallelism)?;
        let v = self.value.forward_view(x.view(), parallelism)?;
        let concat = self.attend_concat(q.view(), k.view(), v.view(), mask, weights, parallelism)?;
        self.project_output(concat, parallelism)
    }

    /// Returns the width of the concatenated heads, `n_heads · d_head_v`.
    pub(super) fn concat_width(&self) -> usize {
        self.n_heads * self.d_head_v()
    }

    /// Computes every head over projected `q` (`q_len × n_heads·d_head`), `k`
    /// (`k_len × key_width`) and `v` (`k_len × value_width`), giving the concatenated
    /// heads, `q_len × n_heads·d_head_v`.
    ///
    /// The caller has checked the widths and that `mask` fits `q_len × k_len`.
    pub(super) fn attend_concat(
        &self,
        q: MatrixView<'_, T>,
        k: MatrixView<'_, T>,
        v: MatrixView<'_, T>,
        mask: &Mask,
        weights: Option<&mut Vec<Matrix<T>>>,
        parallelism: Parallelism,
    ) -> Result<Matrix<T>> {
        let layout = HeadLayout {
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            d_head: self.d_head(),
            d_head_v: self.d_head_v(),
        };
        let mut concat = Matrix::zeros(q.rows(), self.concat_width())?;
        kernel::attend_heads(q, k, v, layout, mask, self.scale, &mut concat, weights, parallelism)?;
        Ok(concat)
    }

    /// Applies the output projection to the concatenated heads, if the layer has one.
    pub(super) fn project_output(&self, concat: Matrix<T>, parallelism: Parallelism) -> Result<Matrix<T>> {
        match &self.output {
            Some(output) => output.forward_view(concat.view(), parallelism),
            None => Ok(concat),
        }
    }
}

/// Returns [`Error::ZeroHeads`] when either count is zero and
/// [`Error::KvHeadsDivide`] unless `n_kv_heads` divides `n_heads`.
pub(super) fn check_head_counts(n_heads: usize, n_kv_heads: usize) -> Result<()> {
    if n_heads == 0 || n_kv_heads == 0 {
        return Err(Error::ZeroHeads);
    }
    if !n_heads.is_multiple_of(n_kv_heads) {
        return Err(Error::KvHeadsDivide { n_heads, n_kv_heads });
    }
    Ok(())
}
