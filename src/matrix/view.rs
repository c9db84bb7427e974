//! `MatrixView`, a borrowed strided view of matrix data.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// A borrowed `rows × cols` view with arbitrary row and column strides.
///
/// Element `(i, j)` is `data[i * row_stride + j * col_stride]`. A view reads a
/// transpose ([`MatrixView::t`]) or a block of columns such as one attention head
/// ([`MatrixView::columns`]) without copying, and every product in the crate accepts
/// views.
///
/// ```
/// use qkv::Matrix;
///
/// let m = Matrix::from_rows(&[[1.0_f32, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])?;
/// let head = m.view().columns(2..4)?;
/// assert_eq!(head.to_matrix(), Matrix::from_rows(&[[3.0, 4.0], [7.0, 8.0]])?);
/// # Ok::<(), qkv::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MatrixView<'a, T> {
    // Invariant: when rows > 0 and cols > 0,
    // (rows - 1) * row_stride + (cols - 1) * col_stride < data.len().
    pub(super) data: &'a [T],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl<'a, T: Copy> MatrixView<'a, T> {
    /// Creates a view of `data` with the given shape and strides.
    ///
    /// # Errors
    ///
    /// [`Error::DataLength`] when an element of the view would lie past the end of
    /// `data`, and [`Error::ShapeOverflow`] when its offset overflows `usize`.
    ///
    /// ```
    /// // The 2 × 2 top-left block of a 2 × 3 row-major buffer, transposed.
    /// let data = [1, 2, 3, 4, 5, 6];
    /// let v = qkv::MatrixView::from_slice(&data, 2, 2, 1, 3)?;
    /// assert_eq!(v.get(0, 1), Some(4));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn from_slice(data: &'a [T], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Result<Self> {
        if rows > 0 && cols > 0 {
            let overflow = Error::ShapeOverflow { rows, cols };
            let last = (rows - 1)
                .checked_mul(row_stride)
                .and_then(|r| (cols - 1).checked_mul(col_stride).and_then(|c| r.checked_add(c)))
                .ok_or(overflow)?;
            if last >= data.len() {
                return Err(Error::DataLength { rows, cols, len: data.len() });
            }
        }
        Ok(Self { data, rows, cols, row_stride, col_stride })
    }

    /// Returns the number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Returns the number of columns.
    #[must_use]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Returns `(rows, cols)`.
    #[must_use]
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Returns the distance in elements between rows.
    #[must_use]
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Returns the distance in elements between columns.
    #[must_use]
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Returns the underlying slice, which starts at element `(0, 0)`.
    #[must_use]
    pub fn as_raw_slice(&self) -> &'a [T] {
        self.data
    }

    /// Returns element `(i, j)`, or `None` when it is out of bounds.
    #[must_use]
    pub fn get(&self, i: usize, j: usize) -> Option<T> {
        (i < self.rows && j < self.cols).then(|| self.data[i * self.row_stride + j * self.col_stride])
    }

    /// Returns element `(i, j)` with only the slice's own bounds check.
    ///
    /// Callers inside the crate keep `i < rows` and `j < cols`.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// Returns the transposed view (`cols × rows`), without copying.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2, 3]])?;
    /// assert_eq!(m.view().t().shape(), (3, 1));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    #[must_use]
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Returns the view of columns `range`, without copying.
    ///
    /// # Errors
    ///
    /// [`Error::RangeOutOfBounds`] when the range does not lie within `0..cols`.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2, 3], [4, 5, 6]])?;
    /// assert_eq!(m.view().columns(1..3)?.get(1, 0), Some(5));
    /// assert!(m.view().columns(2..4).is_err());
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn columns(self, range: Range<usize>) -> Result<Self> {
        if range.start > range.end || range.end > self.cols {
            return Err(Error::RangeOutOfBounds { start: range.start, end: range.end, len: self.cols });
        }
        let width = range.end - range.start;
        if self.rows == 0 || width == 0 {
            return Ok(Self { data: &self.data[..0], rows: self.rows, cols: width, ..self });
        }
        let start = range.start * self.col_stride;
        Ok(Self { data: &self.data[start..], cols: width, ..self })
    }

    /// Returns the view of rows `range`, without copying.
    ///
    /// # Errors
    ///
    /// [`Error::RangeOutOfBounds`] when the range does not lie within `0..rows`.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2], [3, 4], [5, 6]])?;
    /// assert_eq!(m.view().row_range(1..3)?.get(1, 1), Some(6));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn row_range(self, range: Range<usize>) -> Result<Self> {
        Ok(self.t().columns(range)?.t())
    }

    /// Copies the view into a new row-major matrix.
    #[must_use]
    pub fn to_matrix(&self) -> Matrix<T> {
        let mut data = Vec::with_capacity(self.rows * self.cols);
        for i in 0..self.rows {
            for j in 0..self.cols {
                data.push(self.at(i, j));
            }
        }
        Matrix { rows: self.rows, cols: self.cols, data }
    }
}

impl<T: Scalar> MatrixView<'_, T> {
    /// Returns the product `self · rhs` as a new row-major matrix.
    ///
    /// Either side may be a transposed or column-block view, so `Aᵀ·B` and `A·Bᵀ` need
    /// no copy.
    ///
    /// # Errors
    ///
    /// [`Error::MatmulShape`] when `self.cols() != rhs.rows()`.
    ///
    /// ```
    /// use qkv::Matrix;
    ///
    /// let a = Matrix::from_rows(&[[1.0_f64, 2.0], [3.0, 4.0]])?;
    /// let ata = a.view().t().matmul(a.view())?;
    /// assert_eq!(ata, Matrix::from_rows(&[[10.0, 14.0], [14.0, 20.0]])?);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn matmul(&self, rhs: MatrixView<'_, T>) -> Result<Matrix<T>> {
        self.matmul_with(rhs, Parallelism::Auto)
    }

    /// Returns the product `self · rhs`, spreading the work as `parallelism` allows.
    ///
    /// The result is bit-identical for every `parallelism`.
    ///
    /// # Errors
    ///
    /// [`Error::MatmulShape`] when `self.cols() != rhs.rows()`.
    ///
    /// ```
    /// use qkv::{Matrix, Parallelism};
    ///
    /// let a = Matrix::from_fn(64, 64, |i, j| (i + j) as f32)?;
    /// let one = a.view().matmul_with(a.view(), Parallelism::Sequential)?;
    /// let auto = a.view().matmul_with(a.view(), Parallelism::Auto)?;
    /// assert_eq!(one, auto);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn matmul_with(&self, rhs: MatrixView<'_, T>, parallelism: Parallelism) -> Result<Matrix<T>> {
        if self.cols != rhs.rows {
            return Err(Error::MatmulShape { left: self.shape(), right: rhs.shape() });
        }
        let mut out = Matrix::zeros(self.rows, rhs.cols)?;
        T::gemm(*self, rhs, &mut out.data, rhs.cols, parallelism);
        Ok(out)
    }
}
