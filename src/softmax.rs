//! Numerically stable softmax, log-softmax and log-sum-exp over rows.
//!
//! Every function subtracts the row maximum before exponentiating, so no finite input
//! overflows. A row holding NaN or `+∞` yields NaN, because such a row means the caller's
//! data was bad. A row whose entries are all `−∞` (every key masked) yields zero weights.

use crate::matrix::Matrix;
use crate::scalar::Scalar;

/// Returns the maximum of `row`, NaN when any entry is NaN, and `−∞` when `row` is empty.
pub(crate) fn row_max<T: Scalar>(row: &[T]) -> T {
    let mut max = T::neg_infinity();
    for &x in row {
        if x.is_nan() {
            return x;
        }
        if x > max {
            max = x;
        }
    }
    max
}

/// Replaces `row` with its softmax, `exp(x_j − m) / Σ_k exp(x_k − m)` with `m` the row
/// maximum.
///
/// An empty row stays empty. A row whose entries are all `−∞` becomes all zeros, the
/// convention for a row whose keys are all masked. A row containing NaN or `+∞` becomes
/// all NaN.
///
/// ```
/// let mut row = [1000.0_f64, 999.0];
/// qkv::softmax_in_place(&mut row);
/// assert!((row[0] - 0.7310585786300049).abs() < 1e-15);
/// assert!((row[1] - 0.2689414213699951).abs() < 1e-15);
/// ```
pub fn softmax_in_place<T: Scalar>(row: &mut [T]) {
    let max = row_max(row);
    if max == T::neg_infinity() {
        row.fill(T::zero());
        return;
    }

    let mut sum = T::zero();
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum = sum + *x;
    }
    for x in row.iter_mut() {
        *x = *x / sum;
    }
}

/// Replaces `row` with its log-softmax, `x_j − m − ln Σ_k exp(x_k − m)`.
///
/// An empty row stays empty and a row of all `−∞` stays all `−∞`. A row containing NaN
/// or `+∞` becomes all NaN.
///
/// ```
/// let mut row = [0.7_f32];
/// qkv::log_softmax_in_place(&mut row);
/// assert_eq!(row, [0.0]);
/// ```
pub fn log_softmax_in_place<T: Scalar>(row: &mut [T]) {
    let lse = log_sum_exp(row);
    if lse == T::neg_infinity() {
        return;
    }
    for x in row.iter_mut() {
        *x = *x - lse;
    }
}

/// Returns `ln Σ_j exp(x_j)`, computed as `m + ln Σ_j exp(x_j − m)` so that it never
/// overflows.
///
/// An empty row or a row of all `−∞` gives `−∞`. A row containing NaN or `+∞` gives NaN.
///
/// ```
/// let lse = qkv::log_sum_exp(&[1000.0_f64, 1000.0]);
/// assert_eq!(lse, 1000.0 + std::f64::consts::LN_2);
/// assert_eq!(qkv::log_sum_exp::<f64>(&[]), f64::NEG_INFINITY);
/// ```
pub fn log_sum_exp<T: Scalar>(row: &[T]) -> T {
    let max = row_max(row);
    if max == T::neg_infinity() {
        return max;
    }
    if max == T::infinity() {
        return T::nan();
    }

    let mut sum = T::zero();
    for &x in row {
        sum = sum + (x - max).exp();
    }
    max + sum.ln()
}

/// Returns the row-wise softmax of `scores`, one distribution per row.
///
/// Each row follows [`softmax_in_place`].
///
/// ```
/// use qkv::Matrix;
///
/// let scores = Matrix::from_rows(&[[0.0_f64, 0.0], [-1000.0, -1001.0]])?;
/// let weights = qkv::softmax_rows(&scores);
/// assert_eq!(weights.row(0), Some(&[0.5, 0.5][..]));
/// assert!((weights[(1, 0)] - 0.7310585786300049).abs() < 1e-15);
/// # Ok::<(), qkv::Error>(())
/// ```
#[must_use]
pub fn softmax_rows<T: Scalar>(scores: &Matrix<T>) -> Matrix<T> {
    let mut weights = scores.clone();
    let cols = weights.cols();
    if cols > 0 {
        for row in weights.as_mut_slice().chunks_exact_mut(cols) {
            softmax_in_place(row);
        }
    }
    weights
}
