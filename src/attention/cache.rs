//! `KvCache`: the projected keys and values of the tokens a decoder has already seen,
//! kept so that each decoding step projects only its new tokens.

use std::ops::Range;

use crate::attention::mask::Mask;
use crate::error::{Error, Result};
use crate::matrix::{Matrix, MatrixView};
use crate::scalar::Scalar;

/// The projected keys and values of one attention layer, for incremental decoding.
///
/// The cache owns two preallocated buffers, `capacity × key_width` and
/// `capacity × value_width`, of which the first [`KvCache::len`] rows are in use.
/// [`MultiHeadAttention::forward_cached`](crate::MultiHeadAttention::forward_cached)
/// projects only the new token rows, appends their keys and values, and attends over
/// the cached rows, so step `i` costs `O(i·d)` and allocates nothing of size `i × i`.
/// A decoder with several layers keeps one cache per layer.
///
/// A plain cache keeps every token and rejects a step that does not fit with
/// [`Error::CacheFull`]. A cache built with [`KvCache::with_sliding_window`] never
/// fills up: it holds at least the last `window` tokens (up to `capacity`, dropping all
/// but the last `window − 1` when the buffer is full), and each query sees only the
/// last `window` positions, itself included, as sliding-window attention models do.
///
/// The cached keys stay in sequence order: when a sliding-window cache is full, it moves
/// the last `window − 1` rows to the front of its buffers rather than wrapping around as
/// a ring buffer would. The sums over keys then run in the same order as in a full
/// forward with [`Mask::SlidingWindow`], at the cost of copying `window − 1` rows each
/// time the buffer fills. A capacity of about `2 · window` keeps that copy below one row
/// per token.
///
/// ```
/// use qkv::{KvCache, Mask};
///
/// let cache = KvCache::<f32>::new(1024, 64, 64)?;
/// assert_eq!((cache.len(), cache.capacity()), (0, 1024));
///
/// let windowed = KvCache::<f32>::new(512, 64, 64)?.with_sliding_window(256)?;
/// assert_eq!(windowed.window(), Some(256));
/// assert_eq!(windowed.step_mask(), Mask::SlidingWindow { window: 256 });
/// # Ok::<(), qkv::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KvCache<T> {
    // Invariant: len <= capacity, and rows 0..len of keys and values hold the keys and
    // values of positions dropped..dropped + len, in order.
    keys: Matrix<T>,
    values: Matrix<T>,
    len: usize,
    dropped: usize,
    window: Option<usize>,
}

impl<T: Scalar> KvCache<T> {
    /// Creates an empty cache with room for `capacity` tokens, whose key rows are
    /// `key_width` wide and value rows `value_width` wide.
    ///
    /// For a [`MultiHeadAttention`](crate::MultiHeadAttention) layer the widths are its
    /// [`key_width`](crate::MultiHeadAttention::key_width) and
    /// [`value_width`](crate::MultiHeadAttention::value_width), which
    /// [`MultiHeadAttention::kv_cache`](crate::MultiHeadAttention::kv_cache) fills in.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroCapacity`] when `capacity` is zero, and [`Error::ShapeOverflow`]
    /// when `capacity` times a width overflows `usize`.
    ///
    /// ```
    /// use qkv::{Error, KvCache};
    ///
    /// let cache = KvCache::<f64>::new(16, 8, 4)?;
    /// assert_eq!((cache.key_width(), cache.value_width()), (8, 4));
    /// assert_eq!(cache.keys().shape(), (0, 8));
    /// assert_eq!(KvCache::<f64>::new(0, 8, 4).unwrap_err(), Error::ZeroCapacity);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn new(capacity: usize, key_width: usize, value_width: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::ZeroCapacity);
        }
        Ok(Self {
            keys: Matrix::zeros(capacity, key_width)?,
            values: Matrix::zeros(capacity, value_width)?,
            len: 0,
            dropped: 0,
            window: None,
        })
    }

    /// Turns the cache into a sliding window that holds at least the last `window`
    /// tokens and lets each query see only the last `window` positions, itself
    /// included.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWindow`] when `window` is zero, and [`Error::WindowCapacity`] when
    /// it exceeds the capacity.
    ///
    /// ```
    /// use qkv::{Error, KvCache};
    ///
    /// let err = KvCache::<f32>::new(8, 4, 4)?.with_sliding_window(9).unwrap_err();
    /// assert_eq!(err, Error::WindowCapacity { window: 9, capacity: 8 });
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn with_sliding_window(self, window: usize) -> Result<Self> {
        if window == 0 {
            return Err(Error::ZeroWindow);
        }
        if window > self.capacity() {
            return Err(Error::WindowCapacity { window, capacity: self.capacity() });
        }
        Ok(Self { window: Some(window), ..self })
    }

    /// Returns the number of tokens the buffers have room for.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.keys.rows()
    }

    /// Returns the number of cached tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` when no token is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the width of a key row.
    #[must_use]
    pub fn key_width(&self) -> usize {
        self.keys.cols()
    }

    /// Returns the width of a value row.
    #[must_use]
    pub fn value_width(&self) -> usize {
        self.values.cols()
    }

    /// Returns the sliding window, or `None` for a cache that keeps every token.
    #[must_use]
    pub fn window(&self) -> Option<usize> {
        self.window
    }

    /// Returns the sequence position of the next token: the number of tokens appended
    /// since the cache was created or cleared, including those the window dropped.
    ///
    /// Cached row `r` is the token at position `next_position() − len() + r`.
    #[must_use]
    pub fn next_position(&self) -> usize {
        self.dropped + self.len
    }

    /// Returns the mask a decoding step applies over the cached keys:
    /// [`Mask::SlidingWindow`] for a sliding-window cache, [`Mask::Causal`] otherwise.
    ///
    /// Both align bottom-right, so the step's queries are the last positions of the
    /// cache.
    #[must_use]
    pub fn step_mask(&self) -> Mask {
        match self.window {
            Some(window) => Mask::SlidingWindow { window },
            None => Mask::Causal,
        }
    }

    /// Returns the cached keys, `len × key_width`, oldest first.
    #[must_use]
    pub fn keys(&self) -> MatrixView<'_, T> {
        rows_of(&self.keys, 0..self.len)
    }

    /// Returns the cached values, `len × value_width`, oldest first.
    #[must_use]
    pub fn values(&self) -> MatrixView<'_, T> {
        rows_of(&self.values, 0..self.len)
    }

    /// Empties the cache, keeping its buffers, so that it can serve a new sequence.
    pub fn clear(&mut self) {
        self.len = 0;
        self.dropped = 0;
    }

    /// Drops the newest cached tokens so that at most `len` remain, as
    /// [`Vec::truncate`] does. A `len` at or above [`KvCache::len`] changes nothing.
    ///
    /// A decoder uses it to take back tokens it rejects, such as unaccepted draft
    /// tokens in speculative decoding. The next step continues at position
    /// [`KvCache::next_position`], which moves back by the number of dropped tokens.
    ///
    /// ```
    /// use qkv::{Matrix, MultiHeadAttention, Projection};
    /// let p = || Projection::new(Matrix::<f32>::zeros(4, 4).unwrap(), None).unwrap();
    /// let mha = MultiHeadAttention::new(p(), p(), p(), 2)?;
    /// let mut cache = mha.kv_cache(8)?;
    /// mha.forward_cached(&Matrix::zeros(5, 4)?, &mut cache)?;
    /// cache.truncate(3);
    /// assert_eq!((cache.len(), cache.next_position()), (3, 3));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Returns [`Error::CacheWidth`] unless the rows are `key_width` and `value_width`
    /// wide.
    pub(super) fn check_widths(&self, key_width: usize, value_width: usize) -> Result<()> {
        if self.key_width() != key_width {
            return Err(Error::CacheWidth { what: "key", expected: key_width, found: self.key_width() });
        }
        if self.value_width() != value_width {
            return Err(Error::CacheWidth { what: "value", expected: value_width, found: self.value_width() });
        }
        Ok(())
    }

    /// Returns [`Error::CacheFull`] when a plain cache has no room for `new` more
    /// tokens. A sliding-window cache always has room, because it drops old tokens.
    pub(super) fn check_room(&self, new: usize) -> Result<()> {
        if self.window.is_none() && new > self.capacity() - self.len {
            return Err(Error::CacheFull { capacity: self.capacity(), len: self.len, new });
        }
        Ok(())
    }

    /// Returns the most tokens one append may add.
    ///
    /// A sliding-window cache must keep the `window − 1` positions before the first new
    /// token, because that token still sees them.
    pub(super) fn max_append(&self) -> usize {
        match self.window {
            Some(window) => self.capacity() + 1 - window,
            None => self.capacity() - self.len,
        }
    }

    /// Appends `rows` of the projected `keys` and `values`, first dropping the oldest
    /// tokens of a sliding-window cache when the buffers are full.
    ///
    /// The caller has checked the widths and that `rows.len() <= max_append()`.
    pub(super) fn append(&mut self, keys: &Matrix<T>, values: &Matrix<T>, rows: Range<usize>) {
        let new = rows.len();
        if let Some(window) = self.window
            && self.len + new > self.capacity()
        {
            let keep = self.len.min(window - 1);
            let drop = self.len - keep;
            move_rows_to_front(&mut self.keys, drop..self.len);
            move_rows_to_front(&mut self.values, drop..self.len);
            self.dropped += drop;
            self.len = keep;
        }

        copy_rows(keys, rows.clone(), &mut self.keys, self.len);
        copy_rows(values, rows, &mut self.values, self.len);
        self.len += new;
    }

    /// Returns the cached keys and values that the last `q_len` cached tokens can see:
    /// every row for a plain cache, and the last `q_len + window − 1` rows for a
    /// sliding-window cache.
    pub(super) fn visible(&self, q_len: usize) -> (MatrixView<'_, T>, MatrixView<'_, T>) {
        let start = match self.window {
            Some(window) => self.len.saturating_sub(q_len + window - 1),
            None => 0,
        };
        (rows_of(&self.keys, start..self.len), rows_of(&self.values, start..self.len))
    }
}

/// Returns rows `range` of `buffer`, which the cache invariant keeps within it.
fn rows_of<T: Copy>(buffer: &Matrix<T>, range: Range<usize>) -> MatrixView<'_, T> {
    buffer.view().row_range(range).expect("cached rows lie within the buffer")
}

/// Copies rows `rows` of `source` into `target`, starting at row `at`.
fn copy_rows<T: Copy>(source: &Matrix<T>, rows: Range<usize>, target: &mut Matrix<T>, at: usize) {
    let width = source.cols();
    let count = rows.len() * width;
    let from = &source.as_slice()[rows.start * width..][..count];
    target.as_mut_slice()[at * width..][..count].copy_from_slice(from);
}

/// Moves rows `rows` of `buffer` to its top, keeping their order.
fn move_rows_to_front<T: Copy>(buffer: &mut Matrix<T>, rows: Range<usize>) {
    let width = buffer.cols();
    buffer.as_mut_slice().copy_within(rows.start * width..rows.end * width, 0);
}
