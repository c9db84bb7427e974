//! Reproduces the attention of a real pretrained model, all-MiniLM-L6-v2, from the
//! committed fixture: projections, per-head weights and the concatenated heads, for
//! layers 0 and 5 of two sentences, in f64 and f32.

mod common;

use common::{Fixture, MINILM_HEAD_DIM, MINILM_HEADS, max_abs_diff};
use qkv::{Matrix, MultiHeadAttention, Projection, Scalar};

const SENTENCES: [usize; 2] = [0, 1];
const LAYERS: [usize; 2] = [0, 5];

fn layer<T: Scalar>(fx: &Fixture, layer: usize) -> MultiHeadAttention<T> {
    let proj = |name: &str| {
        Projection::from_linear(
            fx.matrix::<T>(&format!("layer{layer}.W_{name}")),
            Some(fx.vector::<T>(&format!("layer{layer}.b_{name}"))),
        )
        .unwrap()
    };
    MultiHeadAttention::new(proj("Q"), proj("K"), proj("V"), MINILM_HEADS).unwrap()
}

/// Checks every projection, head weight and the output of one layer and sentence.
fn check_layer<T: Scalar>(fx: &Fixture, s: usize, l: usize, suffix: &str, tol: f64) {
    let mha = layer::<T>(fx, l);
    let x: Matrix<T> = fx.matrix(&format!("s{s}.layer{l}.attn_in{suffix}"));

    for name in ["Q", "K", "V"] {
        let proj = Projection::from_linear(
            fx.matrix::<T>(&format!("layer{l}.W_{name}")),
            Some(fx.vector::<T>(&format!("layer{l}.b_{name}"))),
        )
        .unwrap();
        let got = proj.forward(&x).unwrap();
        let (_, expected) = fx.tensor(&format!("s{s}.layer{l}.{name}{suffix}"));
        let diff = max_abs_diff(&got, &expected);
        assert!(diff <= tol, "s{s} layer {l} {name}{suffix}: max abs diff {diff:e} > {tol:e}");
    }

    let (context, weights) = mha.forward_with_weights(&x).unwrap();
    let (_, expected) = fx.tensor(&format!("s{s}.layer{l}.context{suffix}"));
    let diff = max_abs_diff(&context, &expected);
    assert!(diff <= tol, "s{s} layer {l} context{suffix}: max abs diff {diff:e} > {tol:e}");

    let (shape, probs) = fx.tensor(&format!("s{s}.layer{l}.probs{suffix}"));
    let n = x.rows();
    assert_eq!(shape, [MINILM_HEADS, n, n]);
    for (h, w) in weights.iter().enumerate() {
        let diff = max_abs_diff(w, &probs[h * n * n..(h + 1) * n * n]);
        assert!(diff <= tol, "s{s} layer {l} head {h} probs{suffix}: max abs diff {diff:e} > {tol:e}");
    }

    let forward = mha.forward(&x).unwrap();
    assert_eq!(forward, context, "forward and forward_with_weights differ for s{s} layer {l}");
}

#[test]
fn minilm_f64_matches_reference() {
    let fx = Fixture::load();
    for s in SENTENCES {
        for l in LAYERS {
            check_layer::<f64>(&fx, s, l, ".f64", 1e-12);
        }
    }
}

#[test]
fn minilm_f32_matches_reference() {
    let fx = Fixture::load();
    for s in SENTENCES {
        for l in LAYERS {
            check_layer::<f32>(&fx, s, l, "", 2e-5);
        }
    }
}

/// Returns the token that `query` attends to most in head `head`, outside `[CLS]`,
/// `[SEP]` and itself, with its weight.
fn strongest_other_token(weights: &Matrix<f64>, tokens: &[String], query: usize) -> (String, f64) {
    let row = weights.row(query).unwrap();
    let (j, &w) = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != query && tokens[j] != "[CLS]" && tokens[j] != "[SEP]")
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    (tokens[j].clone(), w)
}

#[test]
fn minilm_head_11_resolves_it() {
    let fx = Fixture::load();
    let mha = layer::<f64>(&fx, 5);
    for (s, antecedent, expected_weight) in [(0, "cat", 0.6826), (1, "animal", 0.6466)] {
        let tokens = fx.tokens(s);
        let x: Matrix<f64> = fx.matrix(&format!("s{s}.layer5.attn_in.f64"));
        let (_, weights) = mha.forward_with_weights(&x).unwrap();
        let it = tokens.iter().position(|t| t == "it").unwrap();
        let (token, w) = strongest_other_token(&weights[11], &tokens, it);
        assert_eq!(token, antecedent, "s{s}: `it` attends most to {token} ({w:.4})");
        assert!(
            (w - expected_weight).abs() < 5e-4,
            "s{s}: weight on {token} is {w:.5}, expected about {expected_weight}"
        );
    }
}

#[test]
fn minilm_single_head_matches_probs() {
    // One head through SelfAttention with column-block projections equals head 11 of
    // the multi-head layer.
    let fx = Fixture::load();
    let x: Matrix<f64> = fx.matrix("s0.layer5.attn_in.f64");
    let head = 11;
    let cols = head * MINILM_HEAD_DIM..(head + 1) * MINILM_HEAD_DIM;
    let proj = |name: &str| {
        let w: Matrix<f64> = fx.matrix(&format!("layer5.W_{name}"));
        let b: Vec<f64> = fx.vector(&format!("layer5.b_{name}"));
        let w_head = w.view().row_range(cols.clone()).unwrap().to_matrix();
        Projection::from_linear(w_head, Some(b[cols.clone()].to_vec())).unwrap()
    };
    let attn = qkv::SelfAttention::new(proj("Q"), proj("K"), proj("V")).unwrap();
    let (_, weights) = attn.forward_with_weights(&x).unwrap();
    let (_, probs) = fx.tensor("s0.layer5.probs.f64");
    let n = x.rows();
    let diff = max_abs_diff(&weights, &probs[head * n * n..(head + 1) * n * n]);
    assert!(diff <= 1e-12, "head {head} probs: max abs diff {diff:e}");
}
