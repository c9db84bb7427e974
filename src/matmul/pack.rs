//! Packing: copies of blocks of `A` and `B` into the contiguous, zero-padded panel
//! layout that the micro-kernels read.

use std::ops::Range;

use crate::matrix::MatrixView;
use crate::scalar::Scalar;

/// Packs rows `rows` and columns `ks` of `a` into micro-panels of `mr` rows.
///
/// Panel `q` covers rows `rows.start + q·mr ..` and occupies `out[q·mr·kc ..][.. mr·kc]`,
/// with the `mr` values of column `p` at `p·mr ..`. Rows past `rows.end` are zeros.
pub(crate) fn pack_a<T: Scalar>(a: MatrixView<'_, T>, rows: Range<usize>, ks: Range<usize>, mr: usize, out: &mut [T]) {
    let kc = ks.len();
    let data = a.as_raw_slice();
    let (rs, cs) = (a.row_stride(), a.col_stride());

    for (q, panel) in out.chunks_exact_mut(mr * kc).take(rows.len().div_ceil(mr)).enumerate() {
        let first = rows.start + q * mr;
        let height = mr.min(rows.end - first);

        if rs == 1 {
            // Columns of A are contiguous (A is a transposed view): copy `height` values per p.
            for (p, dst) in ks.clone().zip(panel.chunks_exact_mut(mr)) {
                let start = first + p * cs;
                dst[..height].copy_from_slice(&data[start..start + height]);
                dst[height..].fill(T::zero());
            }
        } else {
            // Rows of A are contiguous or strided: walk each row along p.
            for i in 0..mr {
                if i < height {
                    let row = (first + i) * rs;
                    for (p, dst) in ks.clone().zip(panel.chunks_exact_mut(mr)) {
                        dst[i] = data[row + p * cs];
                    }
                } else {
                    for dst in panel.chunks_exact_mut(mr) {
                        dst[i] = T::zero();
                    }
                }
            }
        }
    }
}

/// Packs rows `ks` and columns `cols` of `b` into micro-panels of `nr` columns.
///
/// Panel `q` covers columns `cols.start + q·nr ..` and occupies
/// `out[q·nr·kc ..][.. nr·kc]`, with the `nr` values of row `p` at `p·nr ..`. Columns
/// past `cols.end` are zeros.
pub(crate) fn pack_b<T: Scalar>(b: MatrixView<'_, T>, ks: Range<usize>, cols: Range<usize>, nr: usize, out: &mut [T]) {
    let kc = ks.len();
    let data = b.as_raw_slice();
    let (rs, cs) = (b.row_stride(), b.col_stride());

    for (q, panel) in out.chunks_exact_mut(nr * kc).take(cols.len().div_ceil(nr)).enumerate() {
        let first = cols.start + q * nr;
        let width = nr.min(cols.end - first);

        if cs == 1 {
            // Rows of B are contiguous: copy `width` values per p.
            for (p, dst) in ks.clone().zip(panel.chunks_exact_mut(nr)) {
                let start = p * rs + first;
                dst[..width].copy_from_slice(&data[start..start + width]);
                dst[width..].fill(T::zero());
            }
        } else {
            // Columns of B are contiguous or strided (B is a transposed view such as Kᵀ).
            for j in 0..nr {
                if j < width {
                    let col = (first + j) * cs;
                    for (p, dst) in ks.clone().zip(panel.chunks_exact_mut(nr)) {
                        dst[j] = data[p * rs + col];
                    }
                } else {
                    for dst in panel.chunks_exact_mut(nr) {
                        dst[j] = T::zero();
                    }
                }
            }
        }
    }
}

/// A zeroed buffer of at least `len` elements whose working slice starts on a
/// 64-byte boundary, so that packed panels do not straddle cache lines.
pub(crate) struct PackBuffer<T> {
    storage: Vec<T>,
    offset: usize,
}

impl<T: Scalar> PackBuffer<T> {
    /// Allocates room for `len` elements.
    pub(crate) fn new(len: usize) -> Self {
        let spare = 64 / size_of::<T>().max(1);
        let storage = vec![T::zero(); len + spare];
        let offset = storage.as_ptr().align_offset(64);
        let offset = if offset <= spare { offset } else { 0 };
        Self { storage, offset }
    }

    /// Returns the first `len` elements of the aligned slice.
    pub(crate) fn slice_mut(&mut self, len: usize) -> &mut [T] {
        &mut self.storage[self.offset..self.offset + len]
    }
}
