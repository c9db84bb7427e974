//! Cross-attention: queries from one sequence, keys and values from another (the
//! memory, such as an encoder's output), of a different length.

use crate::attention::mask::Mask;
use crate::attention::multi_head::{MultiHeadAttention, check_head_counts};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::projection::Projection;
use crate::scalar::Scalar;

impl<T: Scalar> MultiHeadAttention<T> {
    /// Creates a cross-attention layer whose queries come from rows of width
    /// `query.d_in()` and whose keys and values come from memory rows of width
    /// `key.d_in()`, with `n_heads` query heads sharing `n_kv_heads` key/value heads.
    ///
    /// The two input widths may differ, as they do in an encoder-decoder model whose
    /// encoder is wider than its decoder. Head widths follow
    /// [`MultiHeadAttention::grouped`]. Such a layer runs
    /// [`MultiHeadAttention::forward_cross`]; its self-attention methods work only when
    /// the two input widths are equal.
    ///
    /// # Errors
    ///
    /// [`Error::KeyValueInputs`] when the key and value input widths differ, and
    /// otherwise the errors of [`MultiHeadAttention::grouped`] other than
    /// [`Error::ProjectionInputs`].
    ///
    /// ```
    /// use qkv::{Error, Matrix, MultiHeadAttention, Projection};
    ///
    /// let p = |d_in, d_out| Projection::new(Matrix::<f32>::zeros(d_in, d_out).unwrap(), None).unwrap();
    /// let cross = MultiHeadAttention::cross(p(8, 8), p(12, 8), p(12, 8), 2, 2)?;
    /// assert_eq!((cross.d_model(), cross.d_memory()), (8, 12));
    ///
    /// let err = MultiHeadAttention::cross(p(8, 8), p(12, 8), p(10, 8), 2, 2).unwrap_err();
    /// assert_eq!(err, Error::KeyValueInputs { key: 12, value: 10 });
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn cross(
        query: Projection<T>,
        key: Projection<T>,
        value: Projection<T>,
        n_heads: usize,
        n_kv_heads: usize,
    ) -> Result<Self> {
        check_head_counts(n_heads, n_kv_heads)?;
        if key.d_in() != value.d_in() {
            return Err(Error::KeyValueInputs { key: key.d_in(), value: value.d_in() });
        }
        Self::from_parts(query, key, value, n_heads, n_kv_heads)
    }

    /// Returns the width of the memory rows that the key and value projections read.
    ///
    /// It equals [`MultiHeadAttention::d_model`] unless the layer was built with
    /// [`MultiHeadAttention::cross`].
    #[must_use]
    pub fn d_memory(&self) -> usize {
        self.key.d_in()
    }

    /// Projects `memory` (`m × d_memory`) into keys (`m × key_width`) and values
    /// (`m × value_width`) for [`MultiHeadAttention::forward_cross_kv`].
    ///
    /// A decoder projects its encoder's output once and reuses the result at every
    /// decoding step.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `memory.cols() != d_memory`.
    pub fn project_memory(&self, memory: &Matrix<T>) -> Result<(Matrix<T>, Matrix<T>)> {
        if memory.cols() != self.d_memory() {
            return Err(Error::InputWidth { expected: self.d_memory(), found: memory.cols() });
        }
        let keys = self.key.forward_view(memory.view(), self.parallelism)?;
        let values = self.value.forward_view(memory.view(), self.parallelism)?;
        Ok((keys, values))
    }

    /// Runs cross-attention from `x` (`n × d_model`) to `memory` (`m × d_memory`),
    /// giving `n × d_out`.
    ///
    /// `mask` has `n` queries and `m` keys; [`Mask::ValidKeys`] marks the memory rows
    /// that are not padding. Causal masks align bottom-right, as everywhere in the crate.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `x` or `memory` has the wrong width, and the errors of
    /// [`Mask::check`] when `mask` does not fit `n × m`.
    ///
    /// ```
    /// use qkv::{Mask, Matrix, MultiHeadAttention, Projection};
    ///
    /// let w = |d_in, d_out, seed: f64| Matrix::from_fn(d_in, d_out, |i, j| ((i * 3 + j) as f64 * seed).sin());
    /// let p = |d_in, d_out, seed| Projection::new(w(d_in, d_out, seed).unwrap(), None).unwrap();
    /// // Two query heads of width 2 share one key/value head; the memory rows are wider.
    /// let cross = MultiHeadAttention::cross(p(4, 4, 0.1), p(6, 2, 0.2), p(6, 2, 0.3), 2, 1)?;
    ///
    /// let x = Matrix::from_fn(3, 4, |i, j| (i + j) as f64 / 5.0)?;
    /// let memory = Matrix::from_fn(5, 6, |i, j| (i * j) as f64 / 9.0)?;
    /// let valid = Mask::ValidKeys(vec![true, true, true, false, false]);
    /// let y = cross.forward_cross(&x, &memory, &valid)?;
    /// assert_eq!(y.shape(), (3, 4));
    ///
    /// // Padding rows do not reach the output, whatever they contain.
    /// let mut padded = memory.clone();
    /// padded.row_mut(4).unwrap().fill(f64::NAN);
    /// assert_eq!(cross.forward_cross(&x, &padded, &valid)?, y);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_cross(&self, x: &Matrix<T>, memory: &Matrix<T>, mask: &Mask) -> Result<Matrix<T>> {
        self.check_queries(x)?;
        mask.check(x.rows(), memory.rows())?;
        let (keys, values) = self.project_memory(memory)?;
        self.cross_checked(x, &keys, &values, mask)
    }

    /// Runs cross-attention from `x` (`n × d_model`) to keys (`m × key_width`) and
    /// values (`m × value_width`) that [`MultiHeadAttention::project_memory`] or the
    /// caller projected, giving `n × d_out`.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `x.cols() != d_model`, [`Error::KvWidth`] when `keys`
    /// or `values` has the wrong width, [`Error::KeyValueRows`] when their row counts
    /// differ, and the errors of [`Mask::check`] when `mask` does not fit `n × m`.
    ///
    /// ```
    /// use qkv::{Mask, Matrix, MultiHeadAttention, Projection};
    /// let p = |d_in| Projection::new(Matrix::<f32>::zeros(d_in, 4).unwrap(), None).unwrap();
    /// let cross = MultiHeadAttention::cross(p(4), p(6), p(6), 2, 2)?;
    /// let x = Matrix::zeros(3, 4)?;
    /// let err = cross.forward_cross_kv(&x, &Matrix::zeros(5, 4)?, &Matrix::zeros(4, 4)?, &Mask::None).unwrap_err();
    /// assert_eq!(err.to_string(), "key count 5 does not match value count 4");
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_cross_kv(
        &self,
        x: &Matrix<T>,
        keys: &Matrix<T>,
        values: &Matrix<T>,
        mask: &Mask,
    ) -> Result<Matrix<T>> {
        self.check_queries(x)?;
        if keys.cols() != self.key_width() {
            return Err(Error::KvWidth { what: "key", expected: self.key_width(), found: keys.cols() });
        }
        if values.cols() != self.value_width() {
            return Err(Error::KvWidth { what: "value", expected: self.value_width(), found: values.cols() });
        }
        if keys.rows() != values.rows() {
            return Err(Error::KeyValueRows { keys: keys.rows(), values: values.rows() });
        }
        mask.check(x.rows(), keys.rows())?;
        self.cross_checked(x, keys, values, mask)
    }

    /// Returns [`Error::InputWidth`] unless `x` is `n × d_model`.
    fn check_queries(&self, x: &Matrix<T>) -> Result<()> {
        if x.cols() != self.d_model() {
            return Err(Error::InputWidth { expected: self.d_model(), found: x.cols() });
        }
        Ok(())
    }

    /// Projects the queries of `x` and attends over checked `keys` and `values`.
    fn cross_checked(&self, x: &Matrix<T>, keys: &Matrix<T>, values: &Matrix<T>, mask: &Mask) -> Result<Matrix<T>> {
        let q = self.query.forward_view(x.view(), self.parallelism)?;
        let concat = self.attend_concat(q.view(), keys.view(), values.view(), mask, None, self.parallelism)?;
        self.project_output(concat, self.parallelism)
    }
}
