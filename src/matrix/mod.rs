//! `Matrix<T>`, an owned row-major matrix, and `MatrixView`, a borrowed strided view of
//! one that reads a transpose or a block of columns without copying.

mod view;

use std::fmt;
use std::ops::{Index, IndexMut};

use crate::error::{Error, Result};
use crate::scalar::Scalar;

pub use view::MatrixView;

/// Returns `rows * cols`, or [`Error::ShapeOverflow`] when it does not fit in `usize`.
pub(crate) fn checked_len(rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols).ok_or(Error::ShapeOverflow { rows, cols })
}

/// An owned, row-major `rows × cols` matrix stored in one contiguous `Vec<T>`.
///
/// Element `(i, j)` sits at index `i * cols + j`. Zero rows or zero columns are valid.
///
/// ```
/// use qkv::Matrix;
///
/// let m = Matrix::from_rows(&[[1.0_f32, 2.0, 3.0], [4.0, 5.0, 6.0]])?;
/// assert_eq!(m.shape(), (2, 3));
/// assert_eq!(m[(1, 2)], 6.0);
/// assert_eq!(m.transpose().row(2), Some(&[3.0, 6.0][..]));
/// # Ok::<(), qkv::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Creates a `rows × cols` matrix from row-major data.
    ///
    /// # Errors
    ///
    /// [`Error::DataLength`] when `data.len() != rows * cols`, and
    /// [`Error::ShapeOverflow`] when `rows * cols` overflows `usize`.
    ///
    /// ```
    /// use qkv::Matrix;
    ///
    /// let m = Matrix::from_vec(2, 2, vec![1, 2, 3, 4])?;
    /// assert_eq!(m[(1, 0)], 3);
    /// assert!(Matrix::from_vec(2, 2, vec![1, 2, 3]).is_err());
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        if data.len() != len {
            return Err(Error::DataLength { rows, cols, len: data.len() });
        }
        Ok(Self { rows, cols, data })
    }

    /// Creates a `rows × cols` matrix whose element `(i, j)` is `f(i, j)`.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeOverflow`] when `rows * cols` overflows `usize`.
    ///
    /// ```
    /// use qkv::Matrix;
    ///
    /// let m = Matrix::from_fn(2, 3, |i, j| (10 * i + j) as f64)?;
    /// assert_eq!(m[(1, 2)], 12.0);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> T) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        let mut data = Vec::with_capacity(len);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Ok(Self { rows, cols, data })
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
    ///
    /// ```
    /// let m = qkv::Matrix::<f32>::zeros(3, 0)?;
    /// assert_eq!(m.shape(), (3, 0));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    #[must_use]
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Returns `true` when the matrix has no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Returns row `i`, or `None` when `i >= rows`.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2], [3, 4]])?;
    /// assert_eq!(m.row(1), Some(&[3, 4][..]));
    /// assert_eq!(m.row(2), None);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    #[must_use]
    pub fn row(&self, i: usize) -> Option<&[T]> {
        (i < self.rows).then(|| &self.data[i * self.cols..(i + 1) * self.cols])
    }

    /// Returns row `i` mutably, or `None` when `i >= rows`.
    #[must_use]
    pub fn row_mut(&mut self, i: usize) -> Option<&mut [T]> {
        (i < self.rows).then(|| &mut self.data[i * self.cols..(i + 1) * self.cols])
    }

    /// Iterates over the rows as slices, top to bottom.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2], [3, 4]])?;
    /// let sums: Vec<i32> = m.rows_iter().map(|r| r.iter().sum()).collect();
    /// assert_eq!(sums, [3, 7]);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn rows_iter(&self) -> impl ExactSizeIterator<Item = &[T]> + '_ {
        (0..self.rows).map(move |i| &self.data[i * self.cols..(i + 1) * self.cols])
    }

    /// Returns the elements in row-major order.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// Returns the elements in row-major order, mutably.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes the matrix and returns its row-major elements.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2], [3, 4]])?;
    /// assert_eq!(m.into_vec(), vec![1, 2, 3, 4]);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    #[must_use]
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }
}

impl<T: Copy> Matrix<T> {
    /// Creates a matrix from a slice of equally long rows.
    ///
    /// An empty slice gives a `0 × 0` matrix.
    ///
    /// # Errors
    ///
    /// [`Error::RaggedRows`] when a row's length differs from the first row's.
    ///
    /// ```
    /// use qkv::{Error, Matrix};
    ///
    /// let m = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]])?;
    /// assert_eq!(m.shape(), (2, 2));
    ///
    /// let err = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
    /// assert_eq!(err, Error::RaggedRows { row: 1, expected: 2, found: 1 });
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn from_rows<R: AsRef<[T]>>(rows: &[R]) -> Result<Self> {
        let cols = rows.first().map_or(0, |r| r.as_ref().len());
        let len = checked_len(rows.len(), cols)?;
        let mut data = Vec::with_capacity(len);
        for (row, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != cols {
                return Err(Error::RaggedRows { row, expected: cols, found: r.len() });
            }
            data.extend_from_slice(r);
        }
        Ok(Self { rows: rows.len(), cols, data })
    }

    /// Returns element `(i, j)`, or `None` when it is out of bounds.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2], [3, 4]])?;
    /// assert_eq!(m.get(0, 1), Some(2));
    /// assert_eq!(m.get(0, 2), None);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    #[must_use]
    pub fn get(&self, i: usize, j: usize) -> Option<T> {
        (i < self.rows && j < self.cols).then(|| self.data[i * self.cols + j])
    }

    /// Returns the `cols × rows` transpose as a new matrix.
    ///
    /// Products never need this: [`Matrix::matmul_transposed`] and
    /// [`MatrixView::t`] read a transpose in place.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2, 3]])?;
    /// assert_eq!(m.transpose(), qkv::Matrix::from_rows(&[[1], [2], [3]])?);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    #[must_use]
    pub fn transpose(&self) -> Self {
        let mut data = Vec::with_capacity(self.data.len());
        for j in 0..self.cols {
            for i in 0..self.rows {
                data.push(self.data[i * self.cols + j]);
            }
        }
        Self { rows: self.cols, cols: self.rows, data }
    }

    /// Returns a borrowed view of the whole matrix.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1, 2], [3, 4]])?;
    /// assert_eq!(m.view().t().get(0, 1), Some(3));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    #[must_use]
    pub fn view(&self) -> MatrixView<'_, T> {
        MatrixView { data: &self.data, rows: self.rows, cols: self.cols, row_stride: self.cols, col_stride: 1 }
    }
}

impl<T: Scalar> Matrix<T> {
    /// Creates a `rows × cols` matrix of zeros.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeOverflow`] when `rows * cols` overflows `usize`.
    ///
    /// ```
    /// let m = qkv::Matrix::<f64>::zeros(2, 3)?;
    /// assert!(m.as_slice().iter().all(|&x| x == 0.0));
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn zeros(rows: usize, cols: usize) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        Ok(Self { rows, cols, data: vec![T::zero(); len] })
    }

    /// Returns the product `self · rhs` (`m × k` times `k × n` gives `m × n`).
    ///
    /// # Errors
    ///
    /// [`Error::MatmulShape`] when `self.cols() != rhs.rows()`.
    ///
    /// ```
    /// use qkv::Matrix;
    ///
    /// let a = Matrix::from_rows(&[[1.0_f64, 2.0], [3.0, 4.0]])?;
    /// let b = Matrix::from_rows(&[[5.0, 6.0], [7.0, 8.0]])?;
    /// assert_eq!(a.matmul(&b)?, Matrix::from_rows(&[[19.0, 22.0], [43.0, 50.0]])?);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn matmul(&self, rhs: &Matrix<T>) -> Result<Matrix<T>> {
        self.view().matmul(rhs.view())
    }

    /// Returns `self · rhsᵀ` (`m × k` times `(n × k)ᵀ` gives `m × n`) without building
    /// the transpose.
    ///
    /// This is the shape of attention scores: `Q·Kᵀ` with one row per token in both.
    ///
    /// # Errors
    ///
    /// [`Error::MatmulShape`] when `self.cols() != rhs.cols()`.
    ///
    /// ```
    /// use qkv::Matrix;
    ///
    /// let q = Matrix::from_rows(&[[1.0_f32, 0.0], [0.0, 2.0]])?;
    /// let k = Matrix::from_rows(&[[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])?;
    /// assert_eq!(q.matmul_transposed(&k)?, Matrix::from_rows(&[[3.0, 5.0, 7.0], [8.0, 12.0, 16.0]])?);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn matmul_transposed(&self, rhs: &Matrix<T>) -> Result<Matrix<T>> {
        self.view().matmul(rhs.view().t())
    }
}

impl<T> Index<(usize, usize)> for Matrix<T> {
    type Output = T;

    /// Returns element `(i, j)`.
    ///
    /// # Panics
    ///
    /// When `i >= rows` or `j >= cols`, as slice indexing does. Use [`Matrix::get`] for a
    /// checked read.
    fn index(&self, (i, j): (usize, usize)) -> &T {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of bounds for a {} × {} matrix",
            self.rows,
            self.cols
        );
        &self.data[i * self.cols + j]
    }
}

impl<T> IndexMut<(usize, usize)> for Matrix<T> {
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut T {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of bounds for a {} × {} matrix",
            self.rows,
            self.cols
        );
        &mut self.data[i * self.cols + j]
    }
}

/// Largest row or column count that [`Display`](fmt::Display) prints in full; larger
/// matrices show their first and last rows and columns around an ellipsis.
const DISPLAY_EDGE: usize = 8;

impl<T: fmt::Display> fmt::Display for Matrix<T> {
    /// Prints one row per line, eliding the middle of matrices larger than 8 × 8.
    ///
    /// ```
    /// let m = qkv::Matrix::from_rows(&[[1.5_f32, -2.0], [0.25, 4.0]])?;
    /// assert_eq!(format!("{m:.2}"), "[[1.50, -2.00],\n [0.25, 4.00]]");
    /// # Ok::<(), qkv::Error>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |n: usize| -> Vec<Option<usize>> {
            if n <= DISPLAY_EDGE {
                (0..n).map(Some).collect()
            } else {
                let half = DISPLAY_EDGE / 2;
                (0..half).map(Some).chain([None]).chain((n - half..n).map(Some)).collect()
            }
        };
        let (rows, cols) = (shown(self.rows), shown(self.cols));

        f.write_str("[")?;
        for (r, i) in rows.iter().enumerate() {
            if r > 0 {
                f.write_str(",\n ")?;
            }
            let Some(i) = *i else {
                f.write_str("...")?;
                continue;
            };
            f.write_str("[")?;
            for (c, j) in cols.iter().enumerate() {
                if c > 0 {
                    f.write_str(", ")?;
                }
                match j {
                    Some(j) => fmt::Display::fmt(&self.data[i * self.cols + j], f)?,
                    None => f.write_str("...")?,
                }
            }
            f.write_str("]")?;
        }
        f.write_str("]")
    }
}

impl<T: fmt::Debug> fmt::Debug for Matrix<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matrix").field("rows", &self.rows).field("cols", &self.cols).field("data", &self.data).finish()
    }
}
