//! `Mask`: which keys each query may attend to.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// The rule that decides which keys each query may attend to.
///
/// Every variant names its polarity: `true` in [`Mask::ValidKeys`] and
/// [`Mask::Allowed`] means *may attend*. A key that a query may not attend to gets
/// weight exactly `0`, whatever its score or value. A query that may attend to no key
/// gets all-zero weights and an all-zero output row.
///
/// ```
/// use qkv::Mask;
///
/// // Two queries at the end of a five-token sequence (bottom-right alignment).
/// let causal = Mask::Causal;
/// assert!(causal.allows(0, 3, 2, 5));
/// assert!(!causal.allows(0, 4, 2, 5));
/// assert!(causal.allows(1, 4, 2, 5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mask {
    /// Every query sees every key.
    #[default]
    None,

    /// Query `i` sees key `j` iff `j ≤ i + k_len − q_len`.
    ///
    /// The alignment is bottom-right: with fewer queries than keys, the queries are the
    /// last `q_len` positions of the sequence, so a decoding step with a key/value cache
    /// sees what the same row of a full forward sees.
    Causal,

    /// Causal attention limited to the last `window` keys: query `i` sees key `j` iff
    /// `i + k_len − q_len − window < j ≤ i + k_len − q_len`.
    ///
    /// With `window ≥ k_len` this equals [`Mask::Causal`]. A window of zero is rejected
    /// by [`Mask::check`].
    SlidingWindow {
        /// Number of most recent keys, the query's own position included, each query
        /// sees.
        window: usize,
    },

    /// Every query sees key `j` iff `valid_keys[j]` is `true`; `false` marks padding.
    ///
    /// PyTorch's `key_padding_mask` has the opposite polarity; convert it with
    /// [`Mask::from_key_padding`].
    ValidKeys(Vec<bool>),

    /// Query `i` sees key `j` iff `allowed[(i, j)]` is `true`; the matrix is
    /// `q_len × k_len`.
    Allowed(Matrix<bool>),
}

impl Mask {
    /// Creates a [`Mask::ValidKeys`] from a padding mask in which `true` marks a key to
    /// ignore, the polarity of PyTorch's `key_padding_mask`.
    ///
    /// ```
    /// use qkv::Mask;
    ///
    /// let mask = Mask::from_key_padding(&[false, false, true]);
    /// assert_eq!(mask, Mask::ValidKeys(vec![true, true, false]));
    /// ```
    #[must_use]
    pub fn from_key_padding(padding: &[bool]) -> Self {
        Mask::ValidKeys(padding.iter().map(|&p| !p).collect())
    }

    /// Creates a [`Mask::Allowed`] whose entry `(i, j)` is `allowed(i, j)`.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeOverflow`] when `q_len * k_len` overflows `usize`.
    ///
    /// ```
    /// use qkv::Mask;
    ///
    /// // Each query sees itself and the key before it.
    /// let band = Mask::allowed_from_fn(3, 3, |i, j| j <= i && i - j <= 1)?;
    /// assert!(band.allows(2, 1, 3, 3));
    /// assert!(!band.allows(2, 0, 3, 3));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn allowed_from_fn(q_len: usize, k_len: usize, allowed: impl FnMut(usize, usize) -> bool) -> Result<Self> {
        Ok(Mask::Allowed(Matrix::from_fn(q_len, k_len, allowed)?))
    }

    /// Checks that the mask fits an attention call with `q_len` queries and `k_len` keys.
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaskLength`] when a [`Mask::ValidKeys`] length differs from `k_len`,
    /// [`Error::ZeroWindow`] for a [`Mask::SlidingWindow`] of zero keys, and
    /// [`Error::MaskShape`] when a [`Mask::Allowed`] matrix is not `q_len × k_len`.
    ///
    /// ```
    /// use qkv::{Error, Mask};
    ///
    /// let err = Mask::ValidKeys(vec![true; 3]).check(2, 4).unwrap_err();
    /// assert_eq!(err, Error::KeyMaskLength { expected: 4, found: 3 });
    /// assert!(Mask::Causal.check(2, 4).is_ok());
    /// ```
    pub fn check(&self, q_len: usize, k_len: usize) -> Result<()> {
        match self {
            Mask::None | Mask::Causal => Ok(()),
            Mask::SlidingWindow { window: 0 } => Err(Error::ZeroWindow),
            Mask::SlidingWindow { .. } => Ok(()),
            Mask::ValidKeys(valid) if valid.len() != k_len => {
                Err(Error::KeyMaskLength { expected: k_len, found: valid.len() })
            }
            Mask::ValidKeys(_) => Ok(()),
            Mask::Allowed(allowed) if allowed.shape() != (q_len, k_len) => {
                Err(Error::MaskShape { expected: (q_len, k_len), found: allowed.shape() })
            }
            Mask::Allowed(_) => Ok(()),
        }
    }

    /// Returns whether query `i` may attend to key `j` in a call with `q_len` queries
    /// and `k_len` keys.
    ///
    /// Indices outside the call's shape give `false`.
    #[must_use]
    pub fn allows(&self, i: usize, j: usize, q_len: usize, k_len: usize) -> bool {
        if i >= q_len || j >= k_len {
            return false;
        }
        match self {
            Mask::None => true,
            Mask::Causal => j < causal_key_end(i, q_len, k_len),
            Mask::SlidingWindow { window } => {
                let end = causal_key_end(i, q_len, k_len);
                j < end && j + window >= end
            }
            Mask::ValidKeys(valid) => valid.get(j).copied().unwrap_or(false),
            Mask::Allowed(allowed) => allowed.get(i, j).unwrap_or(false),
        }
    }

    /// Returns the range of keys outside which query `i` sees nothing. Keys inside it
    /// may still be masked by [`Mask::ValidKeys`] or [`Mask::Allowed`].
    pub(crate) fn key_range(&self, i: usize, q_len: usize, k_len: usize) -> Range<usize> {
        match self {
            Mask::Causal => 0..causal_key_end(i, q_len, k_len),
            Mask::SlidingWindow { window } => {
                let end = causal_key_end(i, q_len, k_len);
                end.saturating_sub(*window)..end
            }
            _ => 0..k_len,
        }
    }
}

/// Returns `i + 1 + k_len − q_len` clamped to `0..=k_len`: the number of keys that
/// query `i` sees under bottom-right causal alignment.
fn causal_key_end(i: usize, q_len: usize, k_len: usize) -> usize {
    (i + 1 + k_len).saturating_sub(q_len).min(k_len)
}
