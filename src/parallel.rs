//! How many threads a kernel may use.

use std::num::NonZeroUsize;

/// How many threads a kernel may spread its work over.
///
/// Work is split by independent rows or heads and never inside a sum, so results are
/// bit-identical for every setting.
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
}
