//! The crate's error type: every check on caller input returns one of these variants,
//! each carrying the shapes involved.

/// Errors returned for invalid shapes, lengths and settings.
///
/// Every variant names the values that did not fit, so the message alone tells the
/// caller what to fix. Shapes are written `rows × cols`.
///
/// ```
/// use qkv::{Error, Matrix};
///
/// let err = Matrix::from_vec(2, 3, vec![1.0_f32; 5]).unwrap_err();
/// assert_eq!(err, Error::DataLength { rows: 2, cols: 3, len: 5 });
/// assert_eq!(err.to_string(), "data length 5 does not match a 2 × 3 matrix (expected 6)");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data length does not equal `rows * cols`.
    #[error("data length {len} does not match a {rows} × {cols} matrix (expected {})", .rows.saturating_mul(*.cols))]
    DataLength {
        /// Requested row count.
        rows: usize,
        /// Requested column count.
        cols: usize,
        /// Length of the data that was passed.
        len: usize,
    },

    /// `rows * cols` does not fit in `usize`.
    #[error("a {rows} × {cols} matrix has more elements than usize can count")]
    ShapeOverflow {
        /// Requested row count.
        rows: usize,
        /// Requested column count.
        cols: usize,
    },

    /// A row passed to a row-wise constructor has a different length from the first row.
    #[error("row {row} has {found} elements, but row 0 has {expected}")]
    RaggedRows {
        /// Index of the first row whose length differs.
        row: usize,
        /// Length of row 0.
        expected: usize,
        /// Length of the offending row.
        found: usize,
    },

    /// A row or column range does not lie within the matrix.
    #[error("range {start}..{end} is out of bounds for length {len}")]
    RangeOutOfBounds {
        /// First index of the range.
        start: usize,
        /// One past the last index of the range.
        end: usize,
        /// Number of rows or columns available.
        len: usize,
    },

    /// The inner dimensions of a matrix product differ.
    #[error("cannot multiply a {} × {} matrix by a {} × {} matrix: inner dimensions {} and {} differ", .left.0, .left.1, .right.0, .right.1, .left.1, .right.0)]
    MatmulShape {
        /// Shape of the left operand as it enters the product.
        left: (usize, usize),
        /// Shape of the right operand as it enters the product.
        right: (usize, usize),
    },

    /// The input width does not match the projection's input width.
    #[error("input width {found} does not match the projection input width {expected}")]
    InputWidth {
        /// The projection's `d_in`.
        expected: usize,
        /// Column count of the input.
        found: usize,
    },

    /// A bias vector's length differs from the projection's output width.
    #[error("bias length {found} does not match the projection output width {expected}")]
    BiasLength {
        /// The projection's `d_out`.
        expected: usize,
        /// Length of the bias that was passed.
        found: usize,
    },

    /// Projections that feed one attention layer take inputs of different widths.
    #[error("projection input widths differ: query {query}, key {key}, value {value}")]
    ProjectionInputs {
        /// `d_in` of the query projection.
        query: usize,
        /// `d_in` of the key projection.
        key: usize,
        /// `d_in` of the value projection.
        value: usize,
    },

    /// The query width differs from the key width, so their dot product is undefined.
    #[error("query width {query} does not match key width {key}")]
    QueryKeyWidth {
        /// Column count of Q (or of one query head).
        query: usize,
        /// Column count of K (or of one key head).
        key: usize,
    },

    /// K and V have different row counts, so a weight has no value row to pick.
    #[error("key count {keys} does not match value count {values}")]
    KeyValueRows {
        /// Row count of K.
        keys: usize,
        /// Row count of V.
        values: usize,
    },

    /// The key width is zero, so `1/√d_k` is undefined.
    #[error("key width must be at least 1, got 0")]
    ZeroKeyWidth,

    /// A multi-head layer was asked for zero heads.
    #[error("head count must be at least 1, got 0")]
    ZeroHeads,

    /// A projection width is not a multiple of the head count.
    #[error("{what} width {width} is not divisible by {heads} heads")]
    HeadsDivide {
        /// Name of the projection: `query`, `key` or `value`.
        what: &'static str,
        /// Width of that projection's output.
        width: usize,
        /// The head count.
        heads: usize,
    },

    /// An output projection's input width differs from the concatenated head width.
    #[error("output projection input width {found} does not match the concatenated head width {expected}")]
    OutputInput {
        /// Concatenated head width, `n_heads · d_head_v`.
        expected: usize,
        /// The output projection's `d_in`.
        found: usize,
    },

    /// A mask's shape does not match `q_len × k_len`.
    #[error("mask shape {} × {} does not match attention shape {} × {} (queries × keys)", .found.0, .found.1, .expected.0, .expected.1)]
    MaskShape {
        /// `(q_len, k_len)` of the attention call.
        expected: (usize, usize),
        /// Shape of the mask that was passed.
        found: (usize, usize),
    },

    /// A key-validity mask's length differs from the key count.
    #[error("key mask length {found} does not match key count {expected}")]
    KeyMaskLength {
        /// Number of keys.
        expected: usize,
        /// Length of the mask that was passed.
        found: usize,
    },

    /// A sliding-window mask was given a window of zero keys.
    #[error("sliding window must cover at least 1 key, got 0")]
    ZeroWindow,

    /// A key/value cache was built with room for zero tokens.
    #[error("key/value cache capacity must be at least 1 token, got 0")]
    ZeroCapacity,

    /// A score scale is zero, negative, infinite or NaN.
    #[error("scale must be finite and positive, got {0}")]
    InvalidScale(f64),

    /// A key/value cache has no room for the tokens of a step.
    #[error(
        "key/value cache is full: {len} of {capacity} rows are in use and the step adds {new}; build the cache with a larger capacity or a sliding window"
    )]
    CacheFull {
        /// Rows the cache was built with.
        capacity: usize,
        /// Rows in use before the step.
        len: usize,
        /// Rows the step tried to append.
        new: usize,
    },

    /// A key/value cache's row width differs from the width the layer projects.
    #[error("cache {what} width {found} does not match the layer's {what} width {expected}")]
    CacheWidth {
        /// Kind of row: `key` or `value`.
        what: &'static str,
        /// Width the layer projects, `n_kv_heads · d_head` for keys and
        /// `n_kv_heads · d_head_v` for values.
        expected: usize,
        /// Width of the cache's rows.
        found: usize,
    },

    /// The key/value head count does not divide the query head count.
    #[error("{n_kv_heads} key/value heads do not divide {n_heads} query heads")]
    KvHeadsDivide {
        /// Number of query heads.
        n_heads: usize,
        /// Number of key/value heads.
        n_kv_heads: usize,
    },

    /// A sliding-window cache has fewer rows than its window.
    #[error("sliding window of {window} keys does not fit a cache of capacity {capacity}")]
    WindowCapacity {
        /// Number of most recent positions each query attends to, its own included.
        window: usize,
        /// Rows the cache was built with.
        capacity: usize,
    },

    /// The key and value projections of a cross-attention layer take inputs of
    /// different widths, so they cannot read the same memory rows.
    #[error("key projection input width {key} does not match value projection input width {value}")]
    KeyValueInputs {
        /// `d_in` of the key projection.
        key: usize,
        /// `d_in` of the value projection.
        value: usize,
    },

    /// Projected keys or values passed to a layer have a width other than the one it
    /// projects.
    #[error("{what} width {found} does not match the layer's {what} width {expected}")]
    KvWidth {
        /// Kind of row: `key` or `value`.
        what: &'static str,
        /// Width the layer projects, `n_kv_heads · d_head` for keys and
        /// `n_kv_heads · d_head_v` for values.
        expected: usize,
        /// Column count of the rows that were passed.
        found: usize,
    },

    /// One sequence of a batch failed its checks.
    #[error("sequence {index} of the batch: {source}")]
    BatchItem {
        /// Position of the sequence in the batch.
        index: usize,
        /// The error the sequence failed with.
        source: Box<Error>,
    },
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
