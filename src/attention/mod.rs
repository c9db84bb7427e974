//! Scaled dot-product attention: the free functions for callers who already have Q, K
//! and V, and [`SelfAttention`], which projects them from token rows first.

pub(crate) mod batch;
pub(crate) mod cache;
pub(crate) mod cross;
pub(crate) mod decode;
pub(crate) mod kernel;
pub(crate) mod mask;
pub(crate) mod multi_head;

use crate::attention::kernel::HeadLayout;
use crate::error::{Error, Result};
use crate::matrix::{Matrix, MatrixView};
use crate::parallel::Parallelism;
use crate::projection::Projection;
use crate::scalar::{Scalar, cast_usize};

pub use cache::KvCache;
pub use mask::Mask;
pub use multi_head::MultiHeadAttention;

/// Returns `1/√d_k`, the default score scale for keys of width `d_k`.
pub(crate) fn default_scale<T: Scalar>(d_k: usize) -> T {
    T::one() / cast_usize::<T>(d_k).sqrt()
}

/// Returns `scale`, or [`Error::InvalidScale`] unless it is finite and positive.
pub(crate) fn check_scale<T: Scalar>(scale: T) -> Result<T> {
    if scale.is_finite() && scale > T::zero() {
        Ok(scale)
    } else {
        Err(Error::InvalidScale(scale.to_f64().unwrap_or(f64::NAN)))
    }
}

/// Checks the shapes of one attention call and returns its effective scale.
fn check_qkv<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    mask: &Mask,
    scale: Option<T>,
) -> Result<T> {
    check_shapes(q, k, v, mask)?;
    match scale {
        Some(s) => check_scale(s),
        None => Ok(default_scale(k.cols())),
    }
}

/// Checks that Q, K, V and `mask` fit one attention call.
pub(crate) fn check_shapes<T: Scalar>(
    q: MatrixView<'_, T>,
    k: MatrixView<'_, T>,
    v: MatrixView<'_, T>,
    mask: &Mask,
) -> Result<()> {
    if q.cols() != k.cols() {
        return Err(Error::QueryKeyWidth { query: q.cols(), key: k.cols() });
    }
    if k.cols() == 0 {
        return Err(Error::ZeroKeyWidth);
    }
    if k.rows() != v.rows() {
        return Err(Error::KeyValueRows { keys: k.rows(), values: v.rows() });
    }
    mask.check(q.rows(), k.rows())
}

/// Computes `softmax(scale · Q·Kᵀ) · V` for queries `q` (`q_len × d_k`), keys `k`
/// (`k_len × d_k`) and values `v` (`k_len × d_v`), giving `q_len × d_v`.
///
/// `scale` replaces the default `1/√d_k` when given; it never multiplies it. Masked
/// keys get weight exactly `0`, and a query with no visible key gets a zero row.
///
/// # Errors
///
/// [`Error::QueryKeyWidth`], [`Error::ZeroKeyWidth`], [`Error::KeyValueRows`],
/// [`Error::MaskShape`] or [`Error::KeyMaskLength`] for shapes that do not fit, and
/// [`Error::InvalidScale`] for a scale that is not finite and positive.
///
/// ```
/// use qkv::{Mask, Matrix, scaled_dot_product_attention};
///
/// let q = Matrix::from_rows(&[[1.0_f64, 0.0], [0.0, 1.0]])?;
/// let k = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0]])?;
/// let v = Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0]])?;
/// let out = scaled_dot_product_attention(&q, &k, &v, &Mask::Causal, None)?;
/// // The first query sees only the first key.
/// assert_eq!(out.row(0), Some(&[1.0, 2.0][..]));
/// # Ok::<(), qkv::Error>(())
/// ```
pub fn scaled_dot_product_attention<T: Scalar>(
    q: &Matrix<T>,
    k: &Matrix<T>,
    v: &Matrix<T>,
    mask: &Mask,
    scale: Option<T>,
) -> Result<Matrix<T>> {
    let scale = check_qkv(q.view(), k.view(), v.view(), mask, scale)?;
    let mut out = Matrix::zeros(q.rows(), v.cols())?;
    kernel::attend(q.view(), k.view(), v.view(), mask, scale, out.as_mut_slice(), v.cols(), None);
    Ok(out)
}

/// Computes what [`scaled_dot_product_attention`] computes and also returns the
/// `q_len × k_len` attention weights (row `i` is query `i`'s distribution over keys).
///
/// # Errors
///
/// The same as [`scaled_dot_product_attention`], plus [`Error::ShapeOverflow`] when
/// `q_len · k_len` overflows `usize`.
///
/// ```
/// use qkv::{Mask, Matrix, scaled_dot_product_attention_weights};
///
/// let q = Matrix::from_rows(&[[1.0_f32, 0.0]])?;
/// let k = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])?;
/// let v = Matrix::from_rows(&[[1.0], [2.0], [f32::NAN]])?;
/// let mask = Mask::ValidKeys(vec![true, true, false]);
/// let (out, weights) = scaled_dot_product_attention_weights(&q, &k, &v, &mask, Some(1.0))?;
/// assert_eq!(weights[(0, 2)], 0.0);
/// assert!((weights.row(0).unwrap().iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// assert!(out[(0, 0)].is_finite());
/// # Ok::<(), qkv::Error>(())
/// ```
pub fn scaled_dot_product_attention_weights<T: Scalar>(
    q: &Matrix<T>,
    k: &Matrix<T>,
    v: &Matrix<T>,
    mask: &Mask,
    scale: Option<T>,
) -> Result<(Matrix<T>, Matrix<T>)> {
    let scale = check_qkv(q.view(), k.view(), v.view(), mask, scale)?;
    let mut out = Matrix::zeros(q.rows(), v.cols())?;
    let mut weights = Matrix::zeros(q.rows(), k.rows())?;
    kernel::attend(
        q.view(),
        k.view(),
        v.view(),
        mask,
        scale,
        out.as_mut_slice(),
        v.cols(),
        Some(weights.as_mut_slice()),
    );
    Ok((out, weights))
}

/// One head of self-attention: `Q = X·W_Q`, `K = X·W_K`, `V = X·W_V`, then
/// `softmax(scale · Q·Kᵀ) · V`, for token rows `X` (`n × d_model`).
///
/// The scale defaults to `1/√d_k`; [`SelfAttention::with_scale`] replaces it. The mask
/// set with [`SelfAttention::with_mask`] applies to [`SelfAttention::forward`];
/// [`SelfAttention::forward_masked`] takes one per call.
///
/// ```
/// use qkv::{Mask, Matrix, Projection, SelfAttention};
///
/// let identity = |n| Matrix::from_fn(n, n, |i, j| if i == j { 1.0_f64 } else { 0.0 });
/// let attn = SelfAttention::new(
///     Projection::new(identity(2)?, None)?,
///     Projection::new(identity(2)?, None)?,
///     Projection::new(identity(2)?, None)?,
/// )?
/// .with_mask(Mask::Causal);
///
/// let x = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])?;
/// let y = attn.forward(&x)?;
/// assert_eq!(y.shape(), (3, 2));
/// assert_eq!(y.row(0), Some(&[1.0, 0.0][..])); // the first token sees only itself
/// # Ok::<(), qkv::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SelfAttention<T> {
    query: Projection<T>,
    key: Projection<T>,
    value: Projection<T>,
    scale: T,
    mask: Mask,
    parallelism: Parallelism,
}

impl<T: Scalar> SelfAttention<T> {
    /// Creates a head from its query, key and value projections.
    ///
    /// # Errors
    ///
    /// [`Error::ProjectionInputs`] when the three input widths differ,
    /// [`Error::QueryKeyWidth`] when the query and key output widths differ, and
    /// [`Error::ZeroKeyWidth`] when they are zero.
    ///
    /// ```
    /// use qkv::{Error, Matrix, Projection, SelfAttention};
    ///
    /// let p = |d_in, d_out| Projection::new(Matrix::<f32>::zeros(d_in, d_out)?, None);
    /// let err = SelfAttention::new(p(8, 4)?, p(8, 2)?, p(8, 4)?).unwrap_err();
    /// assert_eq!(err, Error::QueryKeyWidth { query: 4, key: 2 });
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn new(query: Projection<T>, key: Projection<T>, value: Projection<T>) -> Result<Self> {
        if query.d_in() != key.d_in() || query.d_in() != value.d_in() {
            return Err(Error::ProjectionInputs { query: query.d_in(), key: key.d_in(), value: value.d_in() });
        }
        if query.d_out() != key.d_out() {
            return Err(Error::QueryKeyWidth { query: query.d_out(), key: key.d_out() });
        }
        if key.d_out() == 0 {
            return Err(Error::ZeroKeyWidth);
        }
        let scale = default_scale(key.d_out());
        Ok(Self { query, key, value, scale, mask: Mask::None, parallelism: Parallelism::Auto })
    }

    /// Replaces the score scale `1/√d_k` with `scale`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScale`] unless `scale` is finite and positive.
    ///
    /// ```
    /// use qkv::{Matrix, Projection, SelfAttention};
    /// let p = || Projection::new(Matrix::<f64>::zeros(4, 4).unwrap(), None).unwrap();
    /// let attn = SelfAttention::new(p(), p(), p())?;
    /// assert_eq!(attn.scale(), 0.5); // 1/√d_k with d_k = 4
    /// assert_eq!(attn.with_scale(1.0)?.scale(), 1.0);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn with_scale(self, scale: T) -> Result<Self> {
        Ok(Self { scale: check_scale(scale)?, ..self })
    }

    /// Sets the mask that [`SelfAttention::forward`] and
    /// [`SelfAttention::forward_with_weights`] apply.
    #[must_use]
    pub fn with_mask(self, mask: Mask) -> Self {
        Self { mask, ..self }
    }

    /// Sets how many threads the projections may use; the default is
    /// [`Parallelism::Auto`].
    #[must_use]
    pub fn with_parallelism(self, parallelism: Parallelism) -> Self {
        Self { parallelism, ..self }
    }

    /// Returns the input width `d_model`.
    #[must_use]
    pub fn d_model(&self) -> usize {
        self.query.d_in()
    }

    /// Returns the query and key width `d_k`.
    #[must_use]
    pub fn d_k(&self) -> usize {
        self.key.d_out()
    }

    /// Returns the value and output width `d_v`.
    #[must_use]
    pub fn d_v(&self) -> usize {
        self.value.d_out()
    }

    /// Returns the score scale in use.
    #[must_use]
    pub fn scale(&self) -> T {
        self.scale
    }

    /// Returns the mask that [`SelfAttention::forward`] applies.
    #[must_use]
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// Runs the head on `x` (`n × d_model`) with the configured mask, giving `n × d_v`.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `x.cols() != d_model`, and the mask errors of
    /// [`Mask::check`] when the configured mask does not fit `n × n`.
    ///
    /// ```
    /// use qkv::{Matrix, Projection, SelfAttention};
    /// let p = || Projection::new(Matrix::<f32>::zeros(4, 2).unwrap(), None).unwrap();
    /// let attn = SelfAttention::new(p(), p(), p())?;
    /// assert_eq!(attn.forward(&Matrix::zeros(5, 4)?)?.shape(), (5, 2));
    /// assert_eq!(attn.forward(&Matrix::zeros(0, 4)?)?.shape(), (0, 2));
    /// assert!(attn.forward(&Matrix::zeros(5, 3)?).is_err());
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
        self.forward_masked(x, &self.mask)
    }

    /// Runs the head on `x` and also returns the `n × n` attention weights (row `i` is
    /// token `i`'s distribution over keys).
    ///
    /// # Errors
    ///
    /// The same as [`SelfAttention::forward`].
    pub fn forward_with_weights(&self, x: &Matrix<T>) -> Result<(Matrix<T>, Matrix<T>)> {
        self.forward_masked_with_weights(x, &self.mask)
    }

    /// Runs the head on `x` with `mask` in place of the configured one.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `x.cols() != d_model`, and the errors of
    /// [`Mask::check`] when `mask` does not fit `n × n`.
    ///
    /// ```
    /// use qkv::{Mask, Matrix, Projection, SelfAttention};
    /// let p = || Projection::new(Matrix::<f32>::zeros(4, 2).unwrap(), None).unwrap();
    /// let attn = SelfAttention::new(p(), p(), p())?;
    /// let x = Matrix::zeros(3, 4)?;
    /// let err = attn.forward_masked(&x, &Mask::ValidKeys(vec![true; 2])).unwrap_err();
    /// assert_eq!(err.to_string(), "key mask length 2 does not match key count 3");
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_masked(&self, x: &Matrix<T>, mask: &Mask) -> Result<Matrix<T>> {
        let (q, k, v) = self.project(x, mask)?;
        let mut out = Matrix::zeros(x.rows(), self.d_v())?;
        let one_head = HeadLayout { n_heads: 1, n_kv_heads: 1, d_head: self.d_k(), d_head_v: self.d_v() };
        kernel::attend_heads(
            q.view(),
            k.view(),
            v.view(),
            one_head,
            mask,
            self.scale,
            &mut out,
            None,
            self.parallelism,
        )?;
        Ok(out)
    }

    /// Runs the head on `x` with `mask` and also returns the `n × n` attention weights.
    ///
    /// # Errors
    ///
    /// The same as [`SelfAttention::forward_masked`], plus [`Error::ShapeOverflow`]
    /// when `n · n` overflows `usize`.
    pub fn forward_masked_with_weights(&self, x: &Matrix<T>, mask: &Mask) -> Result<(Matrix<T>, Matrix<T>)> {
        let (q, k, v) = self.project(x, mask)?;
        let mut out = Matrix::zeros(x.rows(), self.d_v())?;
        let mut weights = Matrix::zeros(x.rows(), x.rows())?;
        kernel::attend(
            q.view(),
            k.view(),
            v.view(),
            mask,
            self.scale,
            out.as_mut_slice(),
            self.d_v(),
            Some(weights.as_mut_slice()),
        );
        Ok((out, weights))
    }

    /// Checks `x` and `mask`, then returns the projections `(Q, K, V)` of `x`.
    fn project(&self, x: &Matrix<T>, mask: &Mask) -> Result<(Matrix<T>, Matrix<T>, Matrix<T>)> {
        if x.cols() != self.d_model() {
            return Err(Error::InputWidth { expected: self.d_model(), found: x.cols() });
        }
        mask.check(x.rows(), x.rows())?;

        let q = self.query.forward_view(x.view(), self.parallelism)?;
        let k = self.key.forward_view(x.view(), self.parallelism)?;
        let v = self.value.forward_view(x.view(), self.parallelism)?;
        Ok((q, k, v))
    }
}
