//! Batches: several sequences of different lengths, each with its own mask or cache, in
//! one call spread over threads. Each result must be bit-identical to a call of its own.

mod common;
mod decode_support;

use std::num::NonZeroUsize;

use decode_support::{LAYOUTS, LayerWeights, MaskCase, Rng, assert_close, rows, to_matrix};
use proptest::prelude::*;
use qkv::{Error, KvCache, Mask, Matrix, MultiHeadAttention, Parallelism};

const SETTINGS: [Parallelism; 4] = [
    Parallelism::Sequential,
    Parallelism::Threads(NonZeroUsize::new(2).unwrap()),
    Parallelism::Threads(NonZeroUsize::new(3).unwrap()),
    Parallelism::Auto,
];

/// Builds a layer large enough that a batch of a few dozen tokens is spread over threads.
fn layer(rng: &mut Rng, layout: (usize, usize)) -> (LayerWeights, MultiHeadAttention<f64>) {
    let weights = LayerWeights::random(rng, layout, 16, 16, 4, 3, Some(8));
    let layer = weights.self_attention();
    (weights, layer)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn batch_equals_separate_calls(layout in 0..LAYOUTS.len(), lens in prop::collection::vec(0..72_usize, 0..6), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (weights, layer) = layer(&mut rng, LAYOUTS[layout]);
        let inputs: Vec<_> = lens.iter().map(|&n| rng.mat(n, 16)).collect();
        let xs: Vec<Matrix<f64>> = inputs.iter().map(to_matrix).collect();
        let cases: Vec<MaskCase> = lens.iter().map(|&n| MaskCase::random(&mut rng, n, n)).collect();
        let masks: Vec<Mask> = cases.iter().map(MaskCase::mask).collect();
        let batch: Vec<(&Matrix<f64>, &Mask)> = xs.iter().zip(&masks).collect();

        for parallelism in SETTINGS {
            let layer = layer.clone().with_parallelism(parallelism);
            let outputs = layer.forward_batch(&batch).unwrap();
            prop_assert_eq!(outputs.len(), lens.len());
            for (b, out) in outputs.iter().enumerate() {
                let separate = layer.forward_masked(&xs[b], &masks[b]).unwrap();
                prop_assert_eq!(out, &separate, "{:?}: sequence {} of lengths {:?}", parallelism, b, &lens);

                let n = lens[b];
                let expected = weights.reference(&inputs[b], &inputs[b], |i, j| cases[b].allows(i, j, n, n));
                assert_close(out, &expected, 1e-12, &format!("sequence {b}, mask {:?}", cases[b]));
            }
        }
    }

    #[test]
    fn cached_batch_equals_separate_steps(
        layout in 0..LAYOUTS.len(),
        prompts in prop::collection::vec(0..60_usize, 1..5),
        windows in prop::collection::vec(prop::option::of(1..6_usize), 5),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let (_, layer) = layer(&mut rng, LAYOUTS[layout]);
        let capacity = 64;
        let mut caches: Vec<KvCache<f64>> = prompts
            .iter()
            .zip(&windows)
            .map(|(_, window)| {
                let cache = layer.kv_cache(capacity).unwrap();
                match window {
                    Some(w) => cache.with_sliding_window(*w).unwrap(),
                    None => cache,
                }
            })
            .collect();

        // Prefill every sequence in one batch, then decode three single tokens.
        let step_lens: Vec<Vec<usize>> = vec![prompts.clone(), vec![1; prompts.len()], vec![1; prompts.len()], vec![1; prompts.len()]];
        for (s, lens) in step_lens.iter().enumerate() {
            let parallelism = SETTINGS[s % SETTINGS.len()];
            let layer = layer.clone().with_parallelism(parallelism);
            let xs: Vec<Matrix<f64>> = lens.iter().map(|&n| to_matrix(&rng.mat(n, 16))).collect();
            let mut separate_caches = caches.clone();
            let separate: Vec<Matrix<f64>> = xs
                .iter()
                .zip(&mut separate_caches)
                .map(|(x, cache)| layer.forward_cached(x, cache).unwrap())
                .collect();

            let mut steps: Vec<(&Matrix<f64>, &mut KvCache<f64>)> = xs.iter().zip(caches.iter_mut()).collect();
            let outputs = layer.forward_cached_batch(&mut steps).unwrap();
            prop_assert_eq!(&outputs, &separate, "{:?}, step {}, prompts {:?}", parallelism, s, &prompts);
            prop_assert_eq!(&caches, &separate_caches, "{:?}, step {}: caches differ", parallelism, s);
        }
    }
}

#[test]
fn empty_batch_gives_no_outputs() {
    let (_, layer) = layer(&mut Rng::new(1), (4, 2));
    assert!(layer.forward_batch(&[]).unwrap().is_empty());
    assert!(layer.forward_cached_batch(&mut []).unwrap().is_empty());
}

#[test]
fn batch_error_names_sequence() {
    let (_, layer) = layer(&mut Rng::new(2), (4, 2));
    let (good, bad) = (Matrix::zeros(3, 16).unwrap(), Matrix::zeros(2, 15).unwrap());
    let err = layer.forward_batch(&[(&good, &Mask::None), (&good, &Mask::Causal), (&bad, &Mask::None)]).unwrap_err();
    let inner = Error::InputWidth { expected: 16, found: 15 };
    assert_eq!(err, Error::BatchItem { index: 2, source: Box::new(inner) });
    assert_eq!(err.to_string(), "sequence 2 of the batch: input width 15 does not match the projection input width 16");
}

#[test]
fn cached_batch_error_leaves_caches_unchanged() {
    let (_, layer) = layer(&mut Rng::new(3), (4, 2));
    let x = Matrix::from_fn(3, 16, |i, j| ((i * 16 + j) as f64).sin()).unwrap();
    let (mut roomy, mut tight) = (layer.kv_cache(8).unwrap(), layer.kv_cache(4).unwrap());
    layer.forward_cached(&x, &mut tight).unwrap();
    let (roomy_before, tight_before) = (roomy.clone(), tight.clone());

    let err = layer.forward_cached_batch(&mut [(&x, &mut roomy), (&rows(&x, 0, 2), &mut tight)]).unwrap_err();
    let inner = Error::CacheFull { capacity: 4, len: 3, new: 2 };
    assert_eq!(err, Error::BatchItem { index: 1, source: Box::new(inner) });
    assert_eq!(roomy, roomy_before);
    assert_eq!(tight, tight_before);
}

#[test]
fn cross_layer_batch_is_rejected() {
    // Memory rows of width 12 differ from query rows of width 16, so self-attention
    // fails for every sequence, and the cache stays empty.
    let cross: MultiHeadAttention<f64> =
        LayerWeights::random(&mut Rng::new(4), (2, 1), 16, 12, 4, 4, None).cross_attention();
    let x = Matrix::zeros(2, 16).unwrap();
    let mut cache = cross.kv_cache(4).unwrap();

    let err = cross.forward_cached_batch(&mut [(&x, &mut cache)]).unwrap_err();
    let inner = Error::InputWidth { expected: 12, found: 16 };
    assert_eq!(err, Error::BatchItem { index: 0, source: Box::new(inner.clone()) });
    assert!(cache.is_empty());

    let err = cross.forward_batch(&[(&x, &Mask::None)]).unwrap_err();
    assert_eq!(err, Error::BatchItem { index: 0, source: Box::new(inner) });
}
