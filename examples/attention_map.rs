//! Runs one layer of all-MiniLM-L6-v2's self-attention on a committed sentence and
//! shows where each token looks.
//!
//! ```text
//! cargo run --release --example attention_map
//! cargo run --release --example attention_map -- --sentence 1 --layer 5 --head 11 --token it
//! ```
//!
//! The weights, inputs and reference outputs come from
//! `tests/fixtures/minilm/minilm-attention.safetensors`; its README documents them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::ExitCode;

use common::{Fixture, MINILM_HEADS, max_abs_diff};
use qkv::{Matrix, MultiHeadAttention, Projection};

/// Appends formatted text to a `String`, like `print!` does to stdout.
macro_rules! out {
    ($out:expr, $($arg:tt)*) => {
        $out.push_str(&format!($($arg)*))
    };
}

/// Appends a formatted line to a `String`, like `println!` does to stdout.
macro_rules! outln {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

const USAGE: &str = "\
usage: attention_map [--sentence S] [--layer L] [--head H] [--token T]

Runs a layer of all-MiniLM-L6-v2 self-attention on a fixture sentence in float64,
prints the token each token attends to most in every head, a bar chart of one
head's weights for one token, and the largest difference from the reference.

options:
  --sentence S   fixture sentence, 0 or 1 (default 0)
  --layer L      model layer, 0 or 5 (default 5)
  --head H       head for the bar chart, 0 to 11 (default 11)
  --token T      token for the bar chart: a word (its first occurrence, any
                 case) or a position counted from 0 (default: it)
  -h, --help     print this message";

/// Command-line settings.
struct Options {
    sentence: usize,
    layer: usize,
    head: usize,
    token: String,
}

/// The outcome of parsing the command line when it is not a set of options to run.
enum Exit {
    /// `--help` was given: print the usage and exit successfully.
    Help,
    /// The command line was invalid: print the message and exit with status 2.
    Invalid(String),
}

/// Parses the command line; each option takes a value, as `--head 3` or `--head=3`.
fn parse_options(args: impl Iterator<Item = String>) -> Result<Options, Exit> {
    let invalid = |message: String| Exit::Invalid(format!("{message}\n\n{USAGE}"));
    let mut options = Options { sentence: 0, layer: 5, head: 11, token: "it".to_string() };
    let mut args = args.peekable();

    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(Exit::Help);
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg.clone(), None),
        };
        if !["--sentence", "--layer", "--head", "--token"].contains(&flag.as_str()) {
            return Err(invalid(format!("unknown option {arg:?}")));
        }
        let Some(value) = inline_value.or_else(|| args.next()) else {
            return Err(invalid(format!("missing value for {flag}")));
        };
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| invalid(format!("invalid value {value:?} for {flag}: expected a whole number")))
        };
        match flag.as_str() {
            "--sentence" => options.sentence = number()?,
            "--layer" => options.layer = number()?,
            "--head" => options.head = number()?,
            _ => options.token = value.clone(),
        }
    }

    if options.sentence > 1 {
        return Err(invalid(format!("invalid sentence {}: the fixture has sentences 0 and 1", options.sentence)));
    }
    if options.layer != 0 && options.layer != 5 {
        return Err(invalid(format!("invalid layer {}: the fixture has layers 0 and 5", options.layer)));
    }
    if options.head >= MINILM_HEADS {
        return Err(invalid(format!("invalid head {}: the model has heads 0 to {}", options.head, MINILM_HEADS - 1)));
    }
    Ok(options)
}

/// Returns the position of `token` in `tokens`: a number is a position, and a word
/// matches its first occurrence, ignoring case.
fn find_token(tokens: &[String], token: &str) -> Option<usize> {
    if let Ok(position) = token.parse::<usize>() {
        return (position < tokens.len()).then_some(position);
    }
    tokens.iter().position(|t| t.eq_ignore_ascii_case(token))
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(Exit::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Exit::Invalid(message)) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut out = String::new();
    match run(&options, &mut out) {
        Ok(()) => {
            // A reader such as `head` may close the pipe early; that is not an error.
            match std::io::stdout().write_all(out.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options, out: &mut String) -> Result<(), String> {
    let Options { sentence: s, layer: l, head, .. } = *options;
    let fx = Fixture::load();
    let tokens = fx.tokens(s);
    let Some(query) = find_token(&tokens, &options.token) else {
        let numbered: Vec<String> = tokens.iter().enumerate().map(|(i, t)| format!("{i}:{t}")).collect();
        return Err(format!(
            "token {:?} is not in sentence {s}; pick a word or a position from {}",
            options.token,
            numbered.join(" ")
        ));
    };

    let projection = |name: &str| {
        let weight = fx.matrix::<f64>(&format!("layer{l}.W_{name}"));
        let bias = fx.vector::<f64>(&format!("layer{l}.b_{name}"));
        Projection::from_linear(weight, Some(bias)).map_err(|e| e.to_string())
    };
    let mha = MultiHeadAttention::new(projection("Q")?, projection("K")?, projection("V")?, MINILM_HEADS)
        .map_err(|e| e.to_string())?;
    let x: Matrix<f64> = fx.matrix(&format!("s{s}.layer{l}.attn_in.f64"));
    let (context, weights) = mha.forward_with_weights(&x).map_err(|e| e.to_string())?;

    outln!(out, "all-MiniLM-L6-v2, layer {l}, sentence {s}: {}", tokens.join(" "));
    outln!(out);
    print_strongest(out, &tokens, &weights);

    outln!(out);
    outln!(out, "head {head}, weights of {:?} (token {query}):", tokens[query]);
    let row = weights[head].row(query).unwrap_or_default();
    print_bars(out, &tokens, row);
    if let Some((j, w)) = strongest_other(&tokens, row, query) {
        outln!(out, "{:?} attends most to {:?} ({w:.4}), besides [CLS], [SEP] and itself", tokens[query], tokens[j]);
    }

    let (_, expected) = fx.tensor(&format!("s{s}.layer{l}.context.f64"));
    let context_diff = max_abs_diff(&context, &expected);
    let (_, probs) = fx.tensor(&format!("s{s}.layer{l}.probs.f64"));
    let n = tokens.len();
    let probs_diff = weights
        .iter()
        .enumerate()
        .map(|(h, w)| max_abs_diff(w, &probs[h * n * n..(h + 1) * n * n]))
        .fold(0.0, f64::max);
    outln!(out);
    outln!(out, "largest difference from the PyTorch float64 reference:");
    outln!(out, "  output (heads concatenated): {context_diff:.2e}");
    outln!(out, "  attention weights:           {probs_diff:.2e}");
    Ok(())
}

/// Prints, for every head, the token each token puts its largest weight on, leaving
/// out `[CLS]`, `[SEP]` and the token itself (where most heads park weight).
fn print_strongest(out: &mut String, tokens: &[String], weights: &[Matrix<f64>]) {
    let width = tokens.iter().map(|t| t.chars().count()).max().unwrap_or(0).max(5);
    out!(out, "{:>width$} ", "head");
    for t in tokens {
        out!(out, " {t:>width$}");
    }
    outln!(out);
    for (h, w) in weights.iter().enumerate() {
        out!(out, "{h:>width$} ");
        for (i, row) in w.rows_iter().enumerate() {
            let strongest = strongest_other(tokens, row, i).map_or("-", |(j, _)| tokens[j].as_str());
            out!(out, " {strongest:>width$}");
        }
        outln!(out);
    }
    outln!(out, "(each column is a token; each cell is the token it attends to most, besides [CLS], [SEP] and itself)");
}

/// Returns the key with the largest weight in `row`, and that weight, leaving out
/// `[CLS]`, `[SEP]` and the query itself.
fn strongest_other(tokens: &[String], row: &[f64], query: usize) -> Option<(usize, f64)> {
    row.iter()
        .copied()
        .enumerate()
        .filter(|&(j, _)| j != query && tokens[j] != "[CLS]" && tokens[j] != "[SEP]")
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Prints one bar per key, its length proportional to the weight.
fn print_bars(out: &mut String, tokens: &[String], row: &[f64]) {
    const BAR: usize = 50;
    let width = tokens.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    for (token, &w) in tokens.iter().zip(row) {
        let cells = (w * BAR as f64).round() as usize;
        outln!(out, "  {token:>width$} {w:.4} {}", "█".repeat(cells));
    }
}
