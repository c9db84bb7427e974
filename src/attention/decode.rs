//! Incremental decoding: a multi-head layer run over new tokens and a [`KvCache`] of
//! the tokens before them.

use crate::attention::cache::KvCache;
use crate::attention::multi_head::MultiHeadAttention;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

impl<T: Scalar> MultiHeadAttention<T> {
    /// Creates an empty [`KvCache`] for this layer with room for `capacity` tokens.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroCapacity`](crate::Error::ZeroCapacity) when `capacity` is zero, and
    /// [`Error::ShapeOverflow`](crate::Error::ShapeOverflow) when `capacity` times a row
    /// width overflows `usize`.
    ///
    /// ```
    /// use qkv::{Matrix, MultiHeadAttention, Projection};
    /// let p = |d_out| Projection::new(Matrix::<f32>::zeros(16, d_out).unwrap(), None).unwrap();
    /// let gqa = MultiHeadAttention::grouped(p(16), p(8), p(8), 4, 2)?;
    /// let cache = gqa.kv_cache(128)?;
    /// assert_eq!((cache.capacity(), cache.key_width(), cache.value_width()), (128, 8, 8));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn kv_cache(&self, capacity: usize) -> Result<KvCache<T>> {
        KvCache::new(capacity, self.key_width(), self.value_width())
    }

    /// Runs the layer on new token rows `x` (`n × d_model`) that follow the tokens in
    /// `cache`, appends their keys and values to it, and returns their outputs
    /// (`n × d_out`).
    ///
    /// Only `x` is projected. Its queries attend over the cached keys under
    /// [`KvCache::step_mask`], which aligns bottom-right, so the outputs equal the last
    /// `n` rows of [`MultiHeadAttention::forward_masked`] over the whole sequence with
    /// that mask. With the crate's kernels the bits are identical, because a projected
    /// row and a query row do not depend on the rows computed with them. The mask set
    /// with [`MultiHeadAttention::with_mask`] is not used.
    ///
    /// A prompt goes through in one call (prefill), then each generated token in a call
    /// of its own. A sliding-window cache takes steps longer than its buffer in several
    /// parts, with the same result.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`](crate::Error::InputWidth) when `x.cols() != d_model`, or
    /// when a layer built with [`MultiHeadAttention::cross`] reads memory rows of
    /// another width. [`Error::CacheWidth`](crate::Error::CacheWidth) when the cache rows
    /// do not have the layer's key and value widths, and
    /// [`Error::CacheFull`](crate::Error::CacheFull) when a cache without a sliding
    /// window has no room for `n`
    /// more tokens. On error the cache is unchanged.
    ///
    /// ```
    /// use qkv::{Error, Mask, Matrix, MultiHeadAttention, Projection};
    ///
    /// let w = |seed: f64| Matrix::from_fn(8, 8, |i, j| ((i * 5 + j * 3) as f64 * seed).sin());
    /// let p = |seed| Projection::new(w(seed).unwrap(), None).unwrap();
    /// let mha = MultiHeadAttention::new(p(0.1), p(0.2), p(0.3), 2)?;
    /// let x = Matrix::from_fn(6, 8, |i, j| ((i + 2 * j) as f64 / 7.0).cos())?;
    ///
    /// // Prefill four tokens, then decode two, one at a time.
    /// let mut cache = mha.kv_cache(6)?;
    /// let prefill = mha.forward_cached(&x.view().row_range(0..4)?.to_matrix(), &mut cache)?;
    /// let step_4 = mha.forward_cached(&x.view().row_range(4..5)?.to_matrix(), &mut cache)?;
    /// let step_5 = mha.forward_cached(&x.view().row_range(5..6)?.to_matrix(), &mut cache)?;
    ///
    /// let full = mha.forward_masked(&x, &Mask::Causal)?;
    /// assert_eq!(prefill.row(3), full.row(3));
    /// assert_eq!(step_4.row(0), full.row(4));
    /// assert_eq!(step_5.row(0), full.row(5));
    ///
    /// let err = mha.forward_cached(&x.view().row_range(0..1)?.to_matrix(), &mut cache).unwrap_err();
    /// assert_eq!(err, Error::CacheFull { capacity: 6, len: 6, new: 1 });
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_cached(&self, x: &Matrix<T>, cache: &mut KvCache<T>) -> Result<Matrix<T>> {
        self.check_step(x, cache)?;
        self.step_checked(x, cache, self.parallelism)
    }

    /// Returns the errors [`MultiHeadAttention::forward_cached`] documents for `x` and
    /// `cache`.
    pub(super) fn check_step(&self, x: &Matrix<T>, cache: &KvCache<T>) -> Result<()> {
        self.check_self_input(x)?;
        cache.check_widths(self.key_width(), self.value_width())?;
        cache.check_room(x.rows())
    }

    /// Runs one decoding step that [`Self::check_step`] has accepted.
    pub(super) fn step_checked(
        &self,
        x: &Matrix<T>,
        cache: &mut KvCache<T>,
        parallelism: Parallelism,
    ) -> Result<Matrix<T>> {
        let n = x.rows();
        // TODO: models with rotary position embeddings rotate Q and K between the
        // projection and the cache. That needs a hook here, fed by `next_position`.
        let q = self.query.forward_view(x.view(), parallelism)?;
        let k = self.key.forward_view(x.view(), parallelism)?;
        let v = self.value.forward_view(x.view(), parallelism)?;
        let mask = cache.step_mask();

        // A plain cache has room for the whole step, which check_room ensured. A
        // sliding-window cache takes it in parts that fit beside the `window − 1` keys
        // the first token of each part still sees. Each query row is computed on its
        // own, so splitting does not change the result.
        // NOTE: a sliding-window step reads keys from `window − 1` positions before its
        // first query, not from position 0 as the full forward does. Its outputs stay
        // bit-identical only while the kernel's sums do not depend on that start.
        let part_len = cache.max_append().max(1);
        let mut concat = Vec::new();
        for start in (0..n).step_by(part_len) {
            let end = n.min(start + part_len);
            cache.append(&k, &v, start..end);

            let (keys, values) = cache.visible(end - start);
            let queries = q.view().row_range(start..end)?;
            let part = self.attend_concat(queries, keys, values, &mask, None, parallelism)?;
            if concat.is_empty() {
                concat = part.into_vec();
            } else {
                concat.extend_from_slice(part.as_slice());
            }
        }
        let concat = Matrix::from_vec(n, self.concat_width(), concat)?;

        self.project_output(concat, parallelism)
    }
}
