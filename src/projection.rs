//! `Projection`, the learned affine map `X·W + b` that turns token rows into queries,
//! keys or values.

use crate::error::{Error, Result};
use crate::matrix::{Matrix, MatrixView};
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// The storage layout of a projection's weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightLayout {
    /// `d_in × d_out`, so the projection computes `X·W`.
    InOut,
    /// `d_out × d_in` (PyTorch's `nn.Linear`), so the projection computes `X·Wᵀ`.
    OutIn,
}

/// An affine map `X·W + b` from `n × d_in` token rows to `n × d_out`.
///
/// The bias, if any, is added to every row. Build it from a `d_in × d_out` weight
/// with [`Projection::new`], or from PyTorch's `nn.Linear` layout (`[out, in]`) with
/// [`Projection::from_linear`]; the second reads the weight transposed in place.
///
/// ```
/// use qkv::{Matrix, Projection};
///
/// let w = Matrix::from_rows(&[[1.0_f64, 0.0], [0.0, 2.0], [1.0, 1.0]])?; // 3 × 2
/// let p = Projection::new(w, Some(vec![0.5, -0.5]))?;
/// let x = Matrix::from_rows(&[[1.0, 1.0, 1.0]])?;
/// assert_eq!(p.forward(&x)?, Matrix::from_rows(&[[2.5, 2.5]])?);
/// # Ok::<(), qkv::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Projection<T> {
    weight: Matrix<T>,
    layout: WeightLayout,
    bias: Option<Vec<T>>,
}

impl<T: Scalar> Projection<T> {
    /// Creates a projection from a `d_in × d_out` weight and an optional bias of
    /// length `d_out`.
    ///
    /// # Errors
    ///
    /// [`Error::BiasLength`] when the bias length differs from `d_out`.
    ///
    /// ```
    /// use qkv::{Matrix, Projection};
    ///
    /// let p = Projection::new(Matrix::<f32>::zeros(4, 2)?, None)?;
    /// assert_eq!((p.d_in(), p.d_out()), (4, 2));
    /// assert!(Projection::new(Matrix::<f32>::zeros(4, 2)?, Some(vec![0.0; 3])).is_err());
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn new(weight: Matrix<T>, bias: Option<Vec<T>>) -> Result<Self> {
        Self::build(weight, WeightLayout::InOut, bias)
    }

    /// Creates a projection from a weight in PyTorch's `nn.Linear` layout, `d_out × d_in`
    /// (`[out, in]`), and an optional bias of length `d_out`.
    ///
    /// The projection computes `X·Wᵀ + b`, as `nn.Linear` does, without copying `W`.
    ///
    /// # Errors
    ///
    /// [`Error::BiasLength`] when the bias length differs from `d_out`.
    ///
    /// ```
    /// use qkv::{Matrix, Projection};
    ///
    /// // nn.Linear(3, 2): weight is [2, 3].
    /// let w = Matrix::from_rows(&[[1.0_f64, 0.0, 1.0], [0.0, 2.0, 1.0]])?;
    /// let p = Projection::from_linear(w, None)?;
    /// assert_eq!((p.d_in(), p.d_out()), (3, 2));
    /// let x = Matrix::from_rows(&[[1.0, 1.0, 1.0]])?;
    /// assert_eq!(p.forward(&x)?, Matrix::from_rows(&[[2.0, 3.0]])?);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn from_linear(weight: Matrix<T>, bias: Option<Vec<T>>) -> Result<Self> {
        Self::build(weight, WeightLayout::OutIn, bias)
    }

    fn build(weight: Matrix<T>, layout: WeightLayout, bias: Option<Vec<T>>) -> Result<Self> {
        let projection = Self { weight, layout, bias: None };
        if let Some(b) = &bias
            && b.len() != projection.d_out()
        {
            return Err(Error::BiasLength { expected: projection.d_out(), found: b.len() });
        }
        Ok(Self { bias, ..projection })
    }

    /// Returns the input width `d_in`.
    #[must_use]
    pub fn d_in(&self) -> usize {
        match self.layout {
            WeightLayout::InOut => self.weight.rows(),
            WeightLayout::OutIn => self.weight.cols(),
        }
    }

    /// Returns the output width `d_out`.
    #[must_use]
    pub fn d_out(&self) -> usize {
        match self.layout {
            WeightLayout::InOut => self.weight.cols(),
            WeightLayout::OutIn => self.weight.rows(),
        }
    }

    /// Returns the weight as a `d_in × d_out` view, whatever layout it was built from.
    #[must_use]
    pub fn weight(&self) -> MatrixView<'_, T> {
        match self.layout {
            WeightLayout::InOut => self.weight.view(),
            WeightLayout::OutIn => self.weight.view().t(),
        }
    }

    /// Returns the bias, if the projection has one.
    #[must_use]
    pub fn bias(&self) -> Option<&[T]> {
        self.bias.as_deref()
    }

    /// Applies the projection to `x` (`n × d_in`), giving `n × d_out`.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `x.cols() != d_in`.
    ///
    /// ```
    /// use qkv::{Matrix, Projection};
    ///
    /// let p = Projection::new(Matrix::<f64>::zeros(3, 2)?, None)?;
    /// let err = p.forward(&Matrix::zeros(5, 4)?).unwrap_err();
    /// assert_eq!(err.to_string(), "input width 4 does not match the projection input width 3");
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
        self.forward_view(x.view(), Parallelism::Auto)
    }

    /// Applies the projection to a view `x` (`n × d_in`), spreading the product as
    /// `parallelism` allows.
    ///
    /// # Errors
    ///
    /// [`Error::InputWidth`] when `x.cols() != d_in`.
    ///
    /// ```
    /// use qkv::{Matrix, Parallelism, Projection};
    ///
    /// let p = Projection::new(Matrix::from_rows(&[[2.0_f32], [3.0]])?, None)?;
    /// let x = Matrix::from_rows(&[[1.0, 1.0], [0.0, 1.0]])?;
    /// let y = p.forward_view(x.view().row_range(1..2)?, Parallelism::Sequential)?;
    /// assert_eq!(y.as_slice(), &[3.0]);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_view(&self, x: MatrixView<'_, T>, parallelism: Parallelism) -> Result<Matrix<T>> {
        if x.cols() != self.d_in() {
            return Err(Error::InputWidth { expected: self.d_in(), found: x.cols() });
        }

        let mut out = x.matmul_with(self.weight(), parallelism)?;

        if let Some(bias) = &self.bias {
            let d_out = self.d_out();
            if d_out > 0 {
                for row in out.as_mut_slice().chunks_exact_mut(d_out) {
                    for (y, &b) in row.iter_mut().zip(bias) {
                        *y = *y + b;
                    }
                }
            }
        }
        Ok(out)
    }
}
