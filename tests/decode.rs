//! Incremental decoding with `KvCache`: a sequence decoded step by step after a prefill
//! equals the full causal forward, for plain and sliding-window caches, multi-head,
//! grouped-query and multi-query layouts, in f32 and f64.

mod common;
mod decode_support;

use common::reference::Mat;
use decode_support::{LAYOUTS, LayerWeights, Rng, assert_close, assert_rows_identical, in_window, rows, to_matrix};
use proptest::prelude::*;
use qkv::{Error, KvCache, Mask, Matrix, MultiHeadAttention, Projection, Scalar};

/// A random decoding run: the layer, the tokens and how the steps split them.
#[derive(Debug, Clone)]
struct Case {
    layout: (usize, usize),
    d_model: usize,
    d_head: usize,
    d_head_v: usize,
    output: bool,
    n: usize,
    prefill: usize,
    max_step: usize,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (0..LAYOUTS.len(), 1..9_usize, 1..6_usize, 1..6_usize, any::<bool>(), 0..24_usize, 1..4_usize, any::<u64>())
        .prop_flat_map(|(layout, d_model, d_head, d_head_v, output, n, max_step, seed)| {
            (0..=n).prop_map(move |prefill| Case {
                layout: LAYOUTS[layout],
                d_model,
                d_head,
                d_head_v,
                output,
                n,
                prefill,
                max_step,
                seed,
            })
        })
}

/// Splits `n` tokens into a prefill of `prefill` tokens, then steps of 1 to
/// `max_step` tokens, and returns the step boundaries.
fn steps(rng: &mut Rng, n: usize, prefill: usize, max_step: usize) -> Vec<(usize, usize)> {
    let mut bounds = vec![(0, prefill)];
    let mut start = prefill;
    while start < n {
        let end = n.min(start + 1 + rng.below(max_step));
        bounds.push((start, end));
        start = end;
    }
    bounds
}

/// Decodes `case` through a cache (a sliding window of `window` when given) and checks
/// each step against the full forward with the cache's mask and against the float64
/// reference.
fn check_decode<T: Scalar>(case: &Case, window: Option<(usize, usize)>, tol: f64) {
    let mut rng = Rng::new(case.seed);
    let d_out = case.output.then_some(case.d_model + 1);
    let weights =
        LayerWeights::random(&mut rng, case.layout, case.d_model, case.d_model, case.d_head, case.d_head_v, d_out);
    let layer: MultiHeadAttention<T> = weights.self_attention();
    let x_ref = rng.mat(case.n, case.d_model);
    let x: Matrix<T> = to_matrix(&x_ref);

    let (mut cache, mask) = match window {
        Some((window, capacity)) => {
            (layer.kv_cache(capacity).unwrap().with_sliding_window(window).unwrap(), Mask::SlidingWindow { window })
        }
        // A cache has room for one token at least, even for an empty sequence.
        None => (layer.kv_cache(case.n.max(1)).unwrap(), Mask::Causal),
    };
    let full = layer.forward_masked(&x, &mask).unwrap();
    let expected = match window {
        Some((w, _)) => weights.reference(&x_ref, &x_ref, |i, j| in_window(i, j, case.n, case.n, w)),
        None => weights.reference(&x_ref, &x_ref, |i, j| j <= i),
    };

    for (start, end) in steps(&mut rng, case.n, case.prefill, case.max_step) {
        let context = format!("{case:?}, window {window:?}, step {start}..{end}");
        let out = layer.forward_cached(&rows(&x, start, end), &mut cache).unwrap();
        assert_eq!(out.shape(), (end - start, layer.d_out()), "{context}");
        assert_eq!(cache.next_position(), end, "{context}");

        let expected_rows =
            Mat::new(end - start, expected.cols, expected.data[start * expected.cols..end * expected.cols].to_vec());
        assert_close(&out, &expected_rows, tol, &format!("{context}, against the float64 reference"));
        if window.is_none() {
            assert_rows_identical(&out, &full, start, &context);
        } else {
            // The window cache moves its keys to the front of the buffer, which could
            // move where a blocked kernel splits its sums, so it promises closeness.
            let full_rows = Mat::from_matrix(&rows(&full, start, end));
            assert_close(&out, &full_rows, tol / 10.0, &format!("{context}, against the full forward"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn decode_matches_full_forward_f64(case in case()) {
        check_decode::<f64>(&case, None, 1e-12);
    }

    #[test]
    fn decode_matches_full_forward_f32(case in case()) {
        check_decode::<f32>(&case, None, 2e-5);
    }

    #[test]
    fn window_decode_matches_windowed_forward_f64(case in case(), window in 1..7_usize, slack in 0..5_usize) {
        check_decode::<f64>(&case, Some((window, window + slack)), 1e-12);
    }

    #[test]
    fn window_decode_matches_windowed_forward_f32(case in case(), window in 1..7_usize, slack in 0..5_usize) {
        check_decode::<f32>(&case, Some((window, window + slack)), 2e-5);
    }
}

/// Builds a one-head layer on one-hot tokens whose output row shows which keys a query
/// saw: scores are all zero, so the weights are uniform over the visible keys, and the
/// values are the one-hot tokens themselves.
fn visibility_layer(n: usize) -> (MultiHeadAttention<f64>, Matrix<f64>) {
    let zero = Projection::new(Matrix::zeros(n, 1).unwrap(), None).unwrap();
    let identity =
        Projection::new(Matrix::from_fn(n, n, |i, j| if i == j { 1.0 } else { 0.0 }).unwrap(), None).unwrap();
    let layer = MultiHeadAttention::new(zero.clone(), zero, identity, 1).unwrap();
    let tokens = Matrix::from_fn(n, n, |i, j| if i == j { 1.0 } else { 0.0 }).unwrap();
    (layer, tokens)
}

/// Checks at every step that query `i` of a step of `q_len` tokens over `k_len` cached
/// tokens sees key `j` iff `j ≤ i + k_len − q_len` (and, for a window, `j` is among
/// the last `window` positions).
fn check_bottom_right(window: Option<usize>, capacity: usize, step_lens: &[usize]) {
    let n: usize = step_lens.iter().sum();
    let (layer, tokens) = visibility_layer(n);
    let mut cache = layer.kv_cache(capacity).unwrap();
    if let Some(w) = window {
        cache = cache.with_sliding_window(w).unwrap();
    }

    let mut start = 0;
    for &q_len in step_lens {
        let out = layer.forward_cached(&rows(&tokens, start, start + q_len), &mut cache).unwrap();
        let k_len = start + q_len;
        for i in 0..q_len {
            let visible: Vec<bool> = (0..n)
                .map(|j| match window {
                    Some(w) => in_window(i, j, q_len, k_len, w),
                    None => j < k_len && j <= i + k_len - q_len,
                })
                .collect();
            let count = visible.iter().filter(|&&v| v).count() as f64;
            for (j, &seen) in visible.iter().enumerate() {
                let expected = if seen { 1.0 / count } else { 0.0 };
                assert_eq!(
                    out[(i, j)],
                    expected,
                    "window {window:?}, step at {start} of {q_len} tokens: query {i}, key {j}"
                );
            }
        }
        start += q_len;
    }
}

#[test]
fn causal_bottom_right_at_every_step() {
    check_bottom_right(None, 16, &[5, 1, 1, 3, 1, 2, 1, 2]);
    check_bottom_right(None, 16, &[1; 16]);
}

#[test]
fn window_bottom_right_at_every_step() {
    check_bottom_right(Some(3), 3, &[5, 1, 1, 3, 1, 2, 1, 2]);
    check_bottom_right(Some(4), 6, &[1, 7, 1, 1, 4, 1, 1]);
    check_bottom_right(Some(1), 2, &[3, 1, 2]);
}

fn small_layer() -> MultiHeadAttention<f64> {
    let mut rng = Rng::new(7);
    LayerWeights::random(&mut rng, (4, 2), 6, 6, 3, 2, None).self_attention()
}

#[test]
fn cache_full_names_capacity() {
    let layer = small_layer();
    let x = Matrix::from_fn(5, 6, |i, j| (i + j) as f64 / 10.0).unwrap();
    let mut cache = layer.kv_cache(4).unwrap();
    layer.forward_cached(&rows(&x, 0, 3), &mut cache).unwrap();

    let err = layer.forward_cached(&rows(&x, 3, 5), &mut cache).unwrap_err();
    assert_eq!(err, Error::CacheFull { capacity: 4, len: 3, new: 2 });
    assert_eq!(
        err.to_string(),
        "key/value cache is full: 3 of 4 rows are in use and the step adds 2; build the cache with a larger capacity or a sliding window"
    );
}

#[test]
fn cache_full_leaves_cache_unchanged() {
    let layer = small_layer();
    let x = Matrix::from_fn(4, 6, |i, j| ((i * 6 + j) as f64).sin()).unwrap();
    let mut cache = layer.kv_cache(4).unwrap();
    layer.forward_cached(&rows(&x, 0, 3), &mut cache).unwrap();
    let before = cache.clone();

    assert!(layer.forward_cached(&x, &mut cache).is_err());
    assert_eq!(cache, before);

    let last = layer.forward_cached(&rows(&x, 3, 4), &mut cache).unwrap();
    let full = layer.forward_masked(&x, &Mask::Causal).unwrap();
    assert_rows_identical(&last, &full, 3, "step after a rejected one");
}

#[test]
fn window_cache_never_fills() {
    let layer = small_layer();
    let x = Matrix::from_fn(40, 6, |i, j| ((i * 6 + j) as f64 / 7.0).cos()).unwrap();
    let mut cache = layer.kv_cache(5).unwrap().with_sliding_window(3).unwrap();
    layer.forward_cached(&rows(&x, 0, 17), &mut cache).unwrap();
    for i in 17..40 {
        layer.forward_cached(&rows(&x, i, i + 1), &mut cache).unwrap();
        assert!(cache.len() <= 5, "cache holds {} rows after token {i}", cache.len());
        assert!(cache.len() >= 3, "cache holds {} rows after token {i}", cache.len());
    }
    assert_eq!(cache.next_position(), 40);
}

#[test]
fn step_width_mismatch_is_rejected() {
    let layer = small_layer();
    let mut cache = layer.kv_cache(4).unwrap();
    let err = layer.forward_cached(&Matrix::zeros(1, 5).unwrap(), &mut cache).unwrap_err();
    assert_eq!(err, Error::InputWidth { expected: 6, found: 5 });
    assert!(cache.is_empty());
}

#[test]
fn cache_of_other_layer_is_rejected() {
    let layer = small_layer();
    let x = Matrix::zeros(1, 6).unwrap();

    let mut keys_too_wide = KvCache::new(4, 7, 4).unwrap();
    let err = layer.forward_cached(&x, &mut keys_too_wide).unwrap_err();
    assert_eq!(err, Error::CacheWidth { what: "key", expected: 6, found: 7 });
    assert_eq!(err.to_string(), "cache key width 7 does not match the layer's key width 6");

    let mut values_too_narrow = KvCache::new(4, 6, 3).unwrap();
    let err = layer.forward_cached(&x, &mut values_too_narrow).unwrap_err();
    assert_eq!(err, Error::CacheWidth { what: "value", expected: 4, found: 3 });
}

#[test]
fn window_settings_are_checked() {
    let cache = KvCache::<f32>::new(4, 2, 2).unwrap();
    assert_eq!(cache.clone().with_sliding_window(0).unwrap_err(), Error::ZeroWindow);
    assert_eq!(cache.clone().with_sliding_window(5).unwrap_err(), Error::WindowCapacity { window: 5, capacity: 4 });
    assert_eq!(cache.with_sliding_window(4).unwrap().window(), Some(4));
}

#[test]
fn zero_capacity_cache_is_rejected() {
    let err = KvCache::<f32>::new(0, 2, 2).unwrap_err();
    assert_eq!(err, Error::ZeroCapacity);
    assert_eq!(err.to_string(), "key/value cache capacity must be at least 1 token, got 0");
}

#[test]
fn cache_capacity_overflow_is_rejected() {
    let err = KvCache::<f32>::new(usize::MAX, 2, 2).unwrap_err();
    assert_eq!(err, Error::ShapeOverflow { rows: usize::MAX, cols: 2 });
}

#[test]
fn empty_step_leaves_cache_unchanged() {
    let layer = small_layer();
    let mut cache = layer.kv_cache(2).unwrap();
    layer.forward_cached(&Matrix::zeros(2, 6).unwrap(), &mut cache).unwrap();
    let before = cache.clone();

    let out = layer.forward_cached(&Matrix::zeros(0, 6).unwrap(), &mut cache).unwrap();
    assert_eq!(out.shape(), (0, layer.d_out()));
    assert_eq!(cache, before);
}

#[test]
fn cleared_cache_decodes_again() {
    let layer = small_layer();
    let x = Matrix::from_fn(3, 6, |i, j| ((i + 3 * j) as f64).sin()).unwrap();
    let mut cache = layer.kv_cache(3).unwrap();
    let first = layer.forward_cached(&x, &mut cache).unwrap();

    cache.clear();
    assert_eq!((cache.len(), cache.next_position()), (0, 0));
    let second = layer.forward_cached(&x, &mut cache).unwrap();
    assert_eq!(first, second);
}

#[test]
fn cache_holds_projected_keys_and_values() {
    let mut rng = Rng::new(11);
    let weights = LayerWeights::random(&mut rng, (2, 1), 5, 5, 3, 4, None);
    let layer: MultiHeadAttention<f64> = weights.self_attention();
    let x_ref = rng.mat(4, 5);
    let mut cache = layer.kv_cache(8).unwrap();
    layer.forward_cached(&to_matrix(&x_ref), &mut cache).unwrap();

    let keys = decode_support::affine(&x_ref, &weights.w_k, &weights.b_k);
    let values = decode_support::affine(&x_ref, &weights.w_v, &weights.b_v);
    assert_close(&cache.keys().to_matrix(), &keys, 1e-14, "cached keys");
    assert_close(&cache.values().to_matrix(), &values, 1e-14, "cached values");
}

#[test]
fn truncated_cache_redecodes_identically() {
    let layer = small_layer();
    let x = Matrix::from_fn(6, 6, |i, j| ((2 * i + j) as f64 / 3.0).sin()).unwrap();
    let other = Matrix::from_fn(2, 6, |i, j| ((i + j) as f64).cos()).unwrap();
    let mut cache = layer.kv_cache(6).unwrap();
    layer.forward_cached(&rows(&x, 0, 4), &mut cache).unwrap();

    // Decode two tokens that are then rejected, and take them back.
    layer.forward_cached(&other, &mut cache).unwrap();
    cache.truncate(4);
    assert_eq!((cache.len(), cache.next_position()), (4, 4));

    let out = layer.forward_cached(&rows(&x, 4, 6), &mut cache).unwrap();
    let full = layer.forward_masked(&x, &Mask::Causal).unwrap();
    assert_rows_identical(&out, &full, 4, "after truncation");
}
