//! Batches: one call over several independent sequences of different lengths, spread
//! over threads, each result bit-identical to a call of its own.

use std::num::NonZeroUsize;

use crate::attention::cache::KvCache;
use crate::attention::mask::Mask;
use crate::attention::multi_head::MultiHeadAttention;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::parallel::Parallelism;
use crate::scalar::Scalar;

/// Estimated multiply-adds below which a batch runs on the calling thread, because
/// starting a thread costs more than the work it would take over.
const MIN_WORK_PER_THREAD: usize = 1 << 16;

impl<T: Scalar> MultiHeadAttention<T> {
    /// Runs self-attention on every sequence of `batch`, each `n_b × d_model` with its
    /// own mask over `n_b × n_b`, and returns the outputs (`n_b × d_out`) in order.
    ///
    /// Sequences run on up to [`MultiHeadAttention::with_parallelism`] threads, longest
    /// first. Output `b` is bit-identical to `forward_masked(batch[b].0, batch[b].1)`.
    ///
    /// # Errors
    ///
    /// [`Error::BatchItem`] naming the first sequence that fails the checks of
    /// [`MultiHeadAttention::forward_masked`], with that error inside. Nothing runs
    /// until every sequence has passed.
    ///
    /// ```
    /// use qkv::{Mask, Matrix, MultiHeadAttention, Projection};
    ///
    /// let w = |seed: f64| Matrix::from_fn(4, 4, |i, j| ((i * 4 + j) as f64 * seed).cos());
    /// let p = |seed| Projection::new(w(seed).unwrap(), None).unwrap();
    /// let mha = MultiHeadAttention::new(p(0.3), p(0.5), p(0.7), 2)?;
    ///
    /// let short = Matrix::from_fn(2, 4, |i, j| (i + j) as f64)?;
    /// let long = Matrix::from_fn(5, 4, |i, j| (i * j) as f64 / 4.0)?;
    /// let padding = Mask::ValidKeys(vec![true, true, true, true, false]);
    /// let out = mha.forward_batch(&[(&short, &Mask::Causal), (&long, &padding)])?;
    /// assert_eq!(out[0], mha.forward_masked(&short, &Mask::Causal)?);
    /// assert_eq!(out[1], mha.forward_masked(&long, &padding)?);
    ///
    /// let err = mha.forward_batch(&[(&short, &Mask::None), (&long, &Mask::ValidKeys(vec![true]))]).unwrap_err();
    /// assert_eq!(err.to_string(), "sequence 1 of the batch: key mask length 1 does not match key count 5");
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_batch(&self, batch: &[(&Matrix<T>, &Mask)]) -> Result<Vec<Matrix<T>>> {
        for (index, (x, mask)) in batch.iter().enumerate() {
            self.check_input(x, mask).map_err(|e| batch_error(index, e))?;
        }

        let work: Vec<usize> = batch.iter().map(|(x, _)| self.estimate_work(x.rows(), x.rows())).collect();
        let outputs = spread(batch.iter().collect(), &work, self.parallelism, |(x, mask), parallelism| {
            self.run_checked(x, mask, None, parallelism)
        });
        collect_outputs(outputs)
    }

    /// Runs one decoding step for every sequence of `steps`, each with its new token
    /// rows (`n_b × d_model`) and its own cache, and returns the outputs
    /// (`n_b × d_out`) in order.
    ///
    /// Steps run on up to [`MultiHeadAttention::with_parallelism`] threads. Output `b`
    /// and cache `b` end bit-identical to `forward_cached(steps[b].0, steps[b].1)`.
    ///
    /// # Errors
    ///
    /// [`Error::BatchItem`] naming the first step that fails the checks of
    /// [`MultiHeadAttention::forward_cached`], with that error inside. On error every
    /// cache is unchanged.
    ///
    /// ```
    /// use qkv::{Mask, Matrix, MultiHeadAttention, Projection};
    ///
    /// let w = |seed: f64| Matrix::from_fn(4, 4, |i, j| ((i * 4 + j) as f64 * seed).cos());
    /// let p = |seed| Projection::new(w(seed).unwrap(), None).unwrap();
    /// let mha = MultiHeadAttention::new(p(0.3), p(0.5), p(0.7), 2)?;
    ///
    /// // Two sequences with prompts of different lengths, decoded together.
    /// let (mut first, mut second) = (mha.kv_cache(8)?, mha.kv_cache(8)?);
    /// mha.forward_cached(&Matrix::from_fn(3, 4, |i, j| (i + j) as f64)?, &mut first)?;
    /// mha.forward_cached(&Matrix::from_fn(5, 4, |i, j| (i * j) as f64)?, &mut second)?;
    ///
    /// let token = Matrix::from_rows(&[[0.5, -0.5, 1.0, 0.0]])?;
    /// let out = mha.forward_cached_batch(&mut [(&token, &mut first), (&token, &mut second)])?;
    /// assert_eq!((first.len(), second.len()), (4, 6));
    /// assert_ne!(out[0], out[1]);
    /// # Ok::<(), qkv::Error>(())
    /// ```
    pub fn forward_cached_batch(&self, steps: &mut [(&Matrix<T>, &mut KvCache<T>)]) -> Result<Vec<Matrix<T>>> {
        for (index, (x, cache)) in steps.iter().enumerate() {
            self.check_step(x, cache).map_err(|e| batch_error(index, e))?;
        }

        let work: Vec<usize> =
            steps.iter().map(|(x, cache)| self.estimate_work(x.rows(), cache.len() + x.rows())).collect();
        let outputs = spread(steps.iter_mut().collect(), &work, self.parallelism, |(x, cache), parallelism| {
            self.step_checked(x, cache, parallelism)
        });
        collect_outputs(outputs)
    }

    /// Estimates the multiply-adds of `q_len` queries over `k_len` keys: their
    /// projections and their scores and weighted sums.
    fn estimate_work(&self, q_len: usize, k_len: usize) -> usize {
        let projections = self.d_model() * (self.query.d_out() + self.key_width() + self.value_width());
        let attention = k_len.saturating_mul(self.n_heads * (self.d_head() + self.d_head_v()));
        q_len.saturating_mul(projections.saturating_add(attention))
    }
}

/// Wraps the error of batch entry `index`.
fn batch_error(index: usize, error: Error) -> Error {
    Error::BatchItem { index, source: Box::new(error) }
}

/// Returns the outputs in order, or the first error, wrapped with its index.
fn collect_outputs<T>(outputs: Vec<Result<Matrix<T>>>) -> Result<Vec<Matrix<T>>> {
    outputs.into_iter().enumerate().map(|(index, out)| out.map_err(|e| batch_error(index, e))).collect()
}

/// Applies `run` to every item and returns the results in item order, spreading the
/// items over up to `parallelism.max_threads()` threads.
///
/// Items go to threads whole, largest `work` first, each to the thread with the least
/// work so far. A thread that is given several items runs each one with
/// [`Parallelism::Sequential`]; when there are more threads than items, each item gets
/// an equal share of them.
fn spread<I: Send, R: Send>(
    items: Vec<I>,
    work: &[usize],
    parallelism: Parallelism,
    run: impl Fn(I, Parallelism) -> R + Sync,
) -> Vec<R> {
    let total_work = work.iter().fold(0_usize, |sum, &w| sum.saturating_add(w));
    let threads = parallelism.max_threads().min(items.len()).min(total_work / MIN_WORK_PER_THREAD);
    if threads <= 1 {
        return items.into_iter().map(|item| run(item, parallelism)).collect();
    }
    let inner = match NonZeroUsize::new(parallelism.max_threads() / threads) {
        Some(n) if n.get() > 1 => Parallelism::Threads(n),
        _ => Parallelism::Sequential,
    };

    // Longest-processing-time-first assignment of items to threads.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(work[i]));
    let mut loads = vec![0_usize; threads];
    let mut shares: Vec<Vec<(usize, I)>> = (0..threads).map(|_| Vec::new()).collect();
    let mut slots: Vec<Option<I>> = items.into_iter().map(Some).collect();
    for i in order {
        let lightest = (0..threads).min_by_key(|&t| loads[t]).unwrap_or(0);
        loads[lightest] = loads[lightest].saturating_add(work[i]);
        if let Some(item) = slots[i].take() {
            shares[lightest].push((i, item));
        }
    }

    let run = &run;
    let run_share = move |share: Vec<(usize, I)>| -> Vec<(usize, R)> {
        share.into_iter().map(|(i, item)| (i, run(item, inner))).collect()
    };
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let own_share = shares.pop().unwrap_or_default();
        let handles: Vec<_> = shares.into_iter().map(|share| scope.spawn(move || run_share(share))).collect();
        let mut results = run_share(own_share);
        for handle in handles {
            match handle.join() {
                Ok(part) => results.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    });
    results.sort_by_key(|&(i, _)| i);
    results.into_iter().map(|(_, r)| r).collect()
}
