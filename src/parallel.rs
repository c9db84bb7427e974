//! How many threads a kernel may use, and the split of a row-major output over them.

use std::num::NonZeroUsize;
use std::ops::Range;

/// How many threads a kernel may spread its work over.
///
/// Work is split by independent rows or heads and never inside a sum, so results are
/// bit-identical for every setting. Products too small to repay starting a thread run
/// on the calling thread whatever the setting.
///
/// ```
/// use qkv::Parallelism;
/// use std::num::NonZeroUsize;
///
/// let two = Parallelism::Threads(NonZeroUsize::new(2).unwrap());
/// assert_eq!(two.max_threads(), 2);
/// assert_eq!(Parallelism::Sequential.max_threads(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// Run on the calling thread only.
    Sequential,
    /// Use up to this many threads, the calling one included.
    Threads(NonZeroUsize),
    /// Use up to [`std::thread::available_parallelism`] threads when the problem is
    /// large enough to pay for them.
    #[default]
    Auto,
}

/// Multiply-adds that each thread must get before a product is split. That is about
/// 0.15 ms of `f32` work on one Zen 4 core at the 110 GFLOP/s the matmul benchmark
/// reaches there. By estimate, this is several times the cost of starting a scoped
/// thread and filling its fresh packing buffers.
const MIN_WORK_PER_THREAD: usize = 1 << 23;

impl Parallelism {
    /// Returns the largest number of threads this setting allows.
    #[must_use]
    pub fn max_threads(self) -> usize {
        match self {
            Parallelism::Sequential => 1,
            Parallelism::Threads(n) => n.get(),
            Parallelism::Auto => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        }
    }

    /// Returns how many threads to use for `work` multiply-adds that split into at
    /// most `parts` independent pieces: at least 1, and one per `MIN_WORK_PER_THREAD`.
    pub(crate) fn threads_for(self, work: usize, parts: usize) -> usize {
        self.max_threads().min(work / MIN_WORK_PER_THREAD).min(parts).max(1)
    }
}

/// Splits rows `0..m` of the row-major `c` (row stride `ldc`) into `threads` blocks of
/// whole `granule`-row groups and calls `f(rows, c_rows)` for each on scoped threads,
/// where `c_rows` starts at row `rows.start`. The calling thread takes the first block.
pub(crate) fn for_each_row_block<T, F>(c: &mut [T], ldc: usize, m: usize, granule: usize, threads: usize, f: F)
where
    T: Send,
    F: Fn(Range<usize>, &mut [T]) + Sync,
{
    let groups = m.div_ceil(granule);
    let threads = threads.clamp(1, groups.max(1));
    if threads == 1 {
        f(0..m, c);
        return;
    }

    // Spread the groups as evenly as possible: the first `groups % threads` blocks get one more.
    let mut blocks = Vec::with_capacity(threads);
    let (mut rest, mut start) = (c, 0);
    for t in 0..threads {
        let count = groups / threads + usize::from(t < groups % threads);
        let end = (start + count * granule).min(m);
        let split = (end * ldc - start * ldc).min(rest.len());
        let (head, tail) = rest.split_at_mut(split);
        blocks.push((start..end, head));
        rest = tail;
        start = end;
    }

    std::thread::scope(|scope| {
        let mut blocks = blocks.into_iter();
        let first = blocks.next();
        for (rows, c_rows) in blocks {
            let f = &f;
            scope.spawn(move || f(rows, c_rows));
        }
        if let Some((rows, c_rows)) = first {
            f(rows, c_rows);
        }
    });
}
