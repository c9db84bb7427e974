//! Packing: copies of blocks of `A` and `B` into the contiguous, zero-padded panel
//! layout that the micro-kernels read.

use std::any::Any;
use std::cell::RefCell;
use std::ops::Range;

use crate::matrix::MatrixView;
use crate::scalar::Scalar;

/// The layout of packed micro-panels of `A` in their buffer: element `(i, p)` of a
/// panel is at `i·row_stride + p·col_stride` from the panel's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PanelLayout {
    /// Distance between rows of a panel.
    pub(crate) row_stride: usize,
    /// Distance between consecutive `p` of a panel.
    pub(crate) col_stride: usize,
    /// Distance between the starts of consecutive panels.
    pub(crate) panel_len: usize,
}

/// Returns the layout `pack_a` uses for `mr`-row panels of `kc` columns of `a`.
///
/// A row-major `A` is copied row by row, so the panel keeps its rows (with a stride one
/// cache line above `kc`, so that the rows of a panel fall in different L1 sets).
/// Otherwise each panel stores its `mr` values of one `p` together, which for a
/// transposed `A` is a contiguous copy too.
pub(crate) fn a_layout<T>(a: &MatrixView<'_, T>, mr: usize, kc: usize) -> PanelLayout
where
    T: Copy,
{
    if a.col_stride() == 1 && a.row_stride() != 1 {
        let line = (64 / size_of::<T>().max(1)).max(1);
        let row_stride = kc.next_multiple_of(line) + line;
        PanelLayout { row_stride, col_stride: 1, panel_len: mr * row_stride }
    } else {
        PanelLayout { row_stride: 1, col_stride: mr, panel_len: mr * kc }
    }
}

/// Packs rows `rows` and columns `ks` of `a` into micro-panels of `mr` rows with the
/// given `layout`. Rows past `rows.end` are zeros.
pub(crate) fn pack_a<T: Scalar>(
    a: MatrixView<'_, T>,
    rows: Range<usize>,
    ks: Range<usize>,
    mr: usize,
    layout: PanelLayout,
    out: &mut [T],
) {
    let kc = ks.len();
    let data = a.as_raw_slice();
    let (rs, cs) = (a.row_stride(), a.col_stride());

    for (q, panel) in out.chunks_exact_mut(layout.panel_len).take(rows.len().div_ceil(mr)).enumerate() {
        let first = rows.start + q * mr;
        let height = mr.min(rows.end - first);

        if layout.col_stride == 1 {
            // Rows of A are contiguous: copy each row's kc values.
            for (i, dst) in panel.chunks_exact_mut(layout.row_stride).enumerate() {
                if i < height {
                    let start = (first + i) * rs + ks.start;
                    dst[..kc].copy_from_slice(&data[start..start + kc]);
                } else {
                    dst[..kc].fill(T::zero());
                }
            }
        } else if rs == 1 {
            // Columns of A are contiguous (A is a transposed view): copy `height` values per p.
            for (p, dst) in ks.clone().zip(panel.chunks_exact_mut(mr)) {
                let start = first + p * cs;
                dst[..height].copy_from_slice(&data[start..start + height]);
                dst[height..].fill(T::zero());
            }
        } else {
            // Any other strides: gather element by element.
            for (p, dst) in ks.clone().zip(panel.chunks_exact_mut(mr)) {
                for (i, x) in dst.iter_mut().enumerate() {
                    *x = if i < height { data[(first + i) * rs + p * cs] } else { T::zero() };
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

thread_local! {
    /// Packing buffers kept between calls on this thread, one pair per element type, so
    /// that small products do not pay for an allocation.
    static BUFFERS: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Two packing buffers of one element type.
struct BufferPair<T> {
    a: Vec<T>,
    b: Vec<T>,
}

/// Calls `f` with two buffers of `a_len` and `b_len` elements, each starting on a
/// 64-byte boundary so that packed panels do not straddle cache lines.
///
/// The buffers come from a per-thread cache and hold arbitrary values of `T`; `f` must
/// write what it reads. They return to the cache afterwards, so each thread keeps the
/// largest pair it has needed (at most `MC·KC + KC·NC` elements per element type).
pub(crate) fn with_buffers<T: Scalar, R>(a_len: usize, b_len: usize, f: impl FnOnce(&mut [T], &mut [T]) -> R) -> R {
    let cached = BUFFERS.with_borrow_mut(|buffers| {
        let index = buffers.iter().position(|buffer| buffer.is::<BufferPair<T>>())?;
        buffers.swap_remove(index).downcast::<BufferPair<T>>().ok()
    });
    let mut pair = cached.unwrap_or_else(|| Box::new(BufferPair { a: Vec::new(), b: Vec::new() }));

    let result = f(aligned(&mut pair.a, a_len), aligned(&mut pair.b, b_len));

    BUFFERS.with_borrow_mut(|buffers| buffers.push(pair));
    result
}

/// Grows `buffer` as needed and returns `len` elements of it from a 64-byte boundary.
fn aligned<T: Scalar>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    let spare = 64 / size_of::<T>().max(1);
    if buffer.len() < len + spare {
        buffer.resize(len + spare, T::zero());
    }
    let offset = buffer.as_ptr().align_offset(64);
    let offset = if offset <= spare { offset } else { 0 };
    &mut buffer[offset..offset + len]
}
