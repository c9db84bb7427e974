//! The fused path: for a strip of query rows, walk the key blocks, keep a running max
//! and sum per row, rescale the partial output when the max grows, and divide once at
//! the end (the online softmax of FlashAttention). Memory is the output plus a few
//! strip-sized buffers per thread; no `q_len × k_len` matrix exists.
//!
//! Work is split into (head, strip) items that threads take from a shared counter. Each
//! item's arithmetic depends only on its own rows, so the result is bit-identical for
//! any number of threads.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::HeadLayout;
use super::strip::{BlockInput, StripKernel, StripState};
use crate::attention::mask::Mask;
use crate::matrix::MatrixView;
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// Multiply-adds per extra thread below which [`Parallelism::Auto`] stays on the calling
/// thread: a few hundred microseconds of work, well above the cost of starting a thread.
const AUTO_WORK_PER_THREAD: usize = 1 << 24;

/// One multi-head attention call, with its inputs checked by the caller.
pub(crate) struct Task<'a, T> {
    /// `q_len × n_heads·d_head`.
    pub(crate) q: MatrixView<'a, T>,
    /// `k_len × n_kv_heads·d_head`.
    pub(crate) k: MatrixView<'a, T>,
    /// `k_len × n_kv_heads·d_head_v`.
    pub(crate) v: MatrixView<'a, T>,
    pub(crate) layout: HeadLayout,
    pub(crate) mask: &'a Mask,
    pub(crate) scale: T,
    pub(crate) kernel: StripKernel<T>,
    /// Keys per block. Blocks start at multiples of it, whatever the rows of a strip.
    pub(crate) key_block: usize,
}

/// Computes every head into `out`: output row `i` of head `h` is written to
/// `out[i * out_stride + h * d_head_v..][..d_head_v]`.
pub(crate) fn run<T: Scalar>(task: &Task<'_, T>, out: &mut [T], out_stride: usize, parallelism: Parallelism) {
    let q_len = task.q.rows();
    let d_v = task.layout.d_head_v;
    if q_len == 0 || d_v == 0 {
        return;
    }

    let lanes = task.kernel.lanes();
    let strips = q_len.div_ceil(lanes);
    let items = strips * task.layout.n_heads;
    let threads = thread_count(task, items, parallelism);

    if threads == 1 {
        let mut scratch = Scratch::new(task);
        for item in 0..items {
            let (head, strip) = item_at(task, strips, item);
            compute_strip(task, head, strip, &mut scratch);
            scratch.write(task, head, strip, out, out_stride);
        }
        return;
    }

    // Threads, the calling one included, take items from a shared counter, the most
    // expensive first, and write each finished strip under the lock. Writing a strip
    // costs a small fraction of computing it.
    let next = AtomicUsize::new(0);
    let out = Mutex::new(out);
    let work = || {
        let mut scratch = Scratch::new(task);
        loop {
            let item = next.fetch_add(1, Ordering::Relaxed);
            if item >= items {
                break;
            }
            let (head, strip) = item_at(task, strips, item);
            compute_strip(task, head, strip, &mut scratch);
            let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            scratch.write(task, head, strip, &mut out, out_stride);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
}

/// Returns how many threads to use for `items` work items.
fn thread_count<T: Scalar>(task: &Task<'_, T>, items: usize, parallelism: Parallelism) -> usize {
    let limit = parallelism.max_threads().min(items).max(1);
    if parallelism != Parallelism::Auto {
        return limit;
    }
    let HeadLayout { n_heads, d_head, d_head_v, .. } = task.layout;
    let work = n_heads.saturating_mul(task.q.rows()).saturating_mul(task.k.rows()).saturating_mul(d_head + d_head_v);
    limit.min(work / AUTO_WORK_PER_THREAD + 1)
}

/// Returns the (head, strip) of work item `item`. Items run from the last strip up,
/// because under causal masks the last rows see the most keys, and starting with the
/// largest items balances the threads better.
fn item_at<T: Scalar>(task: &Task<'_, T>, strips: usize, item: usize) -> (usize, usize) {
    let n_heads = task.layout.n_heads;
    (item % n_heads, strips - 1 - item / n_heads)
}

/// Per-thread buffers for one strip.
struct Scratch<T> {
    qt: Vec<T>,
    ot: Vec<T>,
    max: Vec<T>,
    sum: Vec<T>,
    probs: Vec<T>,
    lane_masks: Vec<u64>,
    /// Key range of each row of the strip, from [`Mask::key_range`].
    ranges: Vec<Range<usize>>,
    /// Contiguous copies of a key and a value block, used when the views have a column
    /// stride other than 1.
    keys: Vec<T>,
    values: Vec<T>,
}

impl<T: Scalar> Scratch<T> {
    fn new(task: &Task<'_, T>) -> Self {
        let lanes = task.kernel.lanes();
        let HeadLayout { d_head, d_head_v, .. } = task.layout;
        Self {
            qt: vec![T::zero(); d_head * lanes],
            ot: vec![T::zero(); d_head_v * lanes],
            max: vec![T::zero(); lanes],
            sum: vec![T::zero(); lanes],
            probs: vec![T::zero(); task.key_block * lanes],
            lane_masks: vec![0; task.key_block],
            ranges: Vec::with_capacity(lanes),
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Writes the finished strip, `O / sum` row by row, into `out`. A row with a zero
    /// sum saw no key (or only keys of weight 0) and gets a zero row.
    fn write(&self, task: &Task<'_, T>, head: usize, strip: usize, out: &mut [T], out_stride: usize) {
        let lanes = task.kernel.lanes();
        let d_v = task.layout.d_head_v;
        let first = strip * lanes;
        let rows = lanes.min(task.q.rows() - first);
        for lane in 0..rows {
            let row = &mut out[(first + lane) * out_stride + head * d_v..][..d_v];
            let sum = self.sum[lane];
            for (c, o) in row.iter_mut().enumerate() {
                *o = if sum == T::zero() { T::zero() } else { self.ot[c * lanes + lane] / sum };
            }
        }
    }
}

/// Runs the online softmax for one strip of one head, leaving `O` and the running sums in
/// `scratch`.
fn compute_strip<T: Scalar>(task: &Task<'_, T>, head: usize, strip: usize, scratch: &mut Scratch<T>) {
    let Task { q, k, v, layout, mask, scale, kernel, key_block } = *task;
    let HeadLayout { n_heads, n_kv_heads, d_head: d, d_head_v: d_v } = layout;
    let (q_len, k_len) = (q.rows(), k.rows());
    let lanes = kernel.lanes();
    let first = strip * lanes;
    let rows = lanes.min(q_len - first);
    let group = n_heads / n_kv_heads;
    let kv_head = head / group;

    let q_h = q.columns(head * d..(head + 1) * d).expect("the caller checked the query width");
    let k_h = k.columns(kv_head * d..(kv_head + 1) * d).expect("the caller checked the key width");
    let v_h = v.columns(kv_head * d_v..(kv_head + 1) * d_v).expect("the caller checked the value width");

    // Qᵀ of the strip, zero in the lanes past the last row.
    for p in 0..d {
        for lane in 0..lanes {
            scratch.qt[p * lanes + lane] = if lane < rows { q_h.at(first + lane, p) } else { T::zero() };
        }
    }
    scratch.ot.fill(T::zero());
    scratch.max.fill(T::neg_infinity());
    scratch.sum.fill(T::zero());

    // Keys any row of the strip may see (`lo..hi`), and those every row may see as far as
    // the key ranges go (`inner_lo..inner_hi`).
    scratch.ranges.clear();
    scratch.ranges.extend((first..first + rows).map(|i| mask.key_range(i, q_len, k_len)));
    let (mut lo, mut hi, mut inner_lo, mut inner_hi) = (k_len, 0, 0, k_len);
    for range in &scratch.ranges {
        lo = lo.min(range.start);
        hi = hi.max(range.end);
        inner_lo = inner_lo.max(range.start);
        inner_hi = inner_hi.min(range.end);
    }
    let ranged = matches!(mask, Mask::None | Mask::Causal | Mask::SlidingWindow { .. });
    let all_rows: u64 = if rows == 64 { u64::MAX } else { (1 << rows) - 1 };

    // Loop over key blocks, aligned to multiples of key_block so that a row meets the
    // same blocks whichever strip it is in. A block inside every row's key range needs
    // no lane masks when the mask is only a range.
    let mut j0 = lo / key_block * key_block;
    while j0 < hi {
        let j1 = (j0 + key_block).min(k_len);
        let len = j1 - j0;

        let masked = if ranged && j0 >= inner_lo && j1 <= inner_hi {
            false
        } else {
            let (mut any, mut every) = (0, all_rows);
            for (j, bits) in (j0..j1).zip(&mut scratch.lane_masks) {
                *bits = lane_bits(mask, &scratch.ranges, first, j, q_len, k_len, ranged);
                any |= *bits;
                every &= *bits;
            }
            if any == 0 {
                j0 = j1;
                continue;
            }
            every != all_rows
        };

        let (keys, key_stride) = block_rows(k_h, j0, len, &mut scratch.keys);
        let (values, value_stride) = block_rows(v_h, j0, len, &mut scratch.values);
        let input = BlockInput {
            d,
            d_v,
            scale,
            len,
            keys,
            key_stride,
            values,
            value_stride,
            lane_masks: masked.then_some(&scratch.lane_masks[..len]),
        };
        let mut state = StripState {
            qt: &scratch.qt,
            ot: &mut scratch.ot,
            max: &mut scratch.max,
            sum: &mut scratch.sum,
            probs: &mut scratch.probs,
        };
        kernel.process(&input, &mut state);
        j0 = j1;
    }
}

/// Returns the lane mask of key `j` for the strip whose first row is `first`: bit `lane`
/// is set iff row `first + lane` may attend to key `j`. `ranges` contains each row's key
/// range. When `ranged` is true the mask is nothing more than those ranges. Otherwise
/// each row inside its range is checked against the mask.
fn lane_bits(
    mask: &Mask,
    ranges: &[Range<usize>],
    first: usize,
    j: usize,
    q_len: usize,
    k_len: usize,
    ranged: bool,
) -> u64 {
    let mut bits = 0;
    for (lane, range) in ranges.iter().enumerate() {
        bits |= u64::from(range.contains(&j)) << lane;
    }
    if ranged || bits == 0 {
        return bits;
    }
    match mask {
        Mask::ValidKeys(valid) if valid[j] => bits,
        Mask::ValidKeys(_) => 0,
        _ => {
            for lane in 0..ranges.len() {
                if bits >> lane & 1 == 1 && !mask.allows(first + lane, j, q_len, k_len) {
                    bits &= !(1 << lane);
                }
            }
            bits
        }
    }
}

/// Returns rows `start..start + len` of `view` as a slice and its row stride, copying
/// them into `buffer` only when the view's columns are not contiguous.
fn block_rows<'a, T: Scalar>(
    view: MatrixView<'a, T>,
    start: usize,
    len: usize,
    buffer: &'a mut Vec<T>,
) -> (&'a [T], usize) {
    let width = view.cols();
    if width == 0 {
        return (&[], 0);
    }
    if view.col_stride() == 1 {
        let stride = view.row_stride();
        let data = view.as_raw_slice();
        return (&data[start * stride..(start + len - 1) * stride + width], stride);
    }
    buffer.clear();
    for j in start..start + len {
        buffer.extend((0..width).map(|c| view.at(j, c)));
    }
    (buffer, width)
}
