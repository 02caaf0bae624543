//! Times serve's path for scikit-learn models: the model parsed with
//! [`serve_onnx_ml::onnx`], typed with a symbolic batch `N`, and optimized into the two plans
//! serve's loader makes (one for any batch size, one with `N` bound to 1). Batch 1 runs on
//! the one-row plan, batch 64 on the general plan, as serve does. A program that prints
//! figures, never a test; bench/onnx_ml.sh runs it next to onnxruntime (bench/onnx_ml.py).
//!
//! ```sh
//! cargo run --release -p serve-onnx-ml --example operator_bench -- MODEL.onnx [ROWS.f32] [NAME]
//! ```
//!
//! `ROWS.f32` holds input rows as little-endian float32, row-major, as wide as the model's
//! one input (bench/onnx_ml.sh writes the corpus rows there); without it the rows are
//! pseudo-random. For each batch it prints a line for people on stderr and a JSON line on
//! stdout: `{"side":"serve","model":NAME,"batch":B,"us_per_row":M,"rounds":R,...}`, M the
//! median over R rounds of each round's time per row.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::{DimLike, bail, format_err};

/// Rounds per figure: the median of these is reported.
const ROUNDS: usize = 21;
/// Each round runs the model this long at least (repeating calls), so that the clock's
/// resolution and one-off hiccups do not matter.
const ROUND: Duration = Duration::from_millis(40);
/// Warm-up before the rounds: caches, lazy allocations, frequency scaling.
const WARM_UP: Duration = Duration::from_millis(300);
const BATCHES: [usize; 2] = [1, 64];

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model_path) = args.first() else {
        eprintln!("usage: operator_bench MODEL.onnx [ROWS.f32] [NAME]");
        std::process::exit(2);
    };
    let name = args.get(2).cloned().unwrap_or_else(|| {
        Path::new(model_path)
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let plans = Plans::load(model_path)?;
    let rows = match args.get(1) {
        Some(path) => read_rows(path, plans.width)?,
        None => pseudo_random_rows(256, plans.width),
    };
    for batch in BATCHES {
        let input = batch_of(&rows, plans.width, batch)?;
        let plan = if batch == 1 {
            &plans.single
        } else {
            &plans.general
        };
        let rounds = time(plan, &input, batch)?;
        let median = median(&rounds);
        let (min, max) = (rounds[0], rounds[rounds.len() - 1]);
        eprintln!(
            "{name:<28} batch {batch:>3}: {median:>9.2} µs/row (median of {ROUNDS} rounds, \
             min {min:.2}, max {max:.2})"
        );
        println!(
            "{{\"side\":\"serve\",\"model\":\"{name}\",\"batch\":{batch},\"us_per_row\":{median},\
             \"min_us_per_row\":{min},\"max_us_per_row\":{max},\"rounds\":{ROUNDS}}}"
        );
    }
    Ok(())
}

/// The two plans serve's loader makes, and the input's width.
struct Plans {
    general: Arc<TypedRunnableModel>,
    single: Arc<TypedRunnableModel>,
    width: usize,
}

impl Plans {
    fn load(path: &str) -> TractResult<Plans> {
        let mut model = serve_onnx_ml::onnx().model_for_path(path)?;
        let inputs = model.input_outlets()?.len();
        if inputs != 1 {
            bail!("the benchmark feeds one float input; this model has {inputs}");
        }
        let declared = model.input_fact(0)?.shape.clone();
        let width = declared
            .dims()
            .nth(1)
            .and_then(|d| d.concretize())
            .and_then(|d| d.to_usize().ok())
            .ok_or_else(|| format_err!("the input's width is not fixed: {declared:?}"))?;
        let n = model.sym("N");
        model.set_input_fact(0, f32::fact(&[n.to_dim(), width.to_dim()]).into())?;
        let typed = model.into_typed()?.into_decluttered()?;
        let one_row: HashMap<Symbol, TDim> = [(n, TDim::Val(1))].into();
        let single = typed
            .set_symbols(&one_row)?
            .into_optimized()?
            .into_runnable()?;
        let general = typed.into_optimized()?.into_runnable()?;
        Ok(Plans {
            general,
            single,
            width,
        })
    }
}

/// Rows of little-endian float32, `width` to a row.
fn read_rows(path: &str, width: usize) -> TractResult<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    if bytes.is_empty() || bytes.len() % (4 * width) != 0 {
        bail!(
            "{path}: {} bytes is not rows of {width} float32",
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Values spread like standardized features (a fixed xorshift sequence, roughly normal).
fn pseudo_random_rows(rows: usize, width: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..rows * width)
        .map(|_| ((0..4).map(|_| uniform()).sum::<f64>() - 2.0) as f32 * 1.7)
        .collect()
}

/// `batch` rows taken in turn from `rows` (cycling).
fn batch_of(rows: &[f32], width: usize, batch: usize) -> TractResult<TValue> {
    let available = rows.len() / width;
    let data: Vec<f32> = (0..batch)
        .flat_map(|i| {
            let r = i % available;
            rows[r * width..(r + 1) * width].iter().copied()
        })
        .collect();
    Ok(Tensor::from_shape(&[batch, width], &data)?.into_tvalue())
}

/// The time per row of each round, in microseconds, sorted.
fn time(plan: &Arc<TypedRunnableModel>, input: &TValue, batch: usize) -> TractResult<Vec<f64>> {
    let call = || plan.run(tvec!(input.clone()));
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < WARM_UP {
        call()?;
        calls += 1;
    }
    // Calls per round, from the warm-up's pace.
    let per_call = start.elapsed().as_secs_f64() / calls as f64;
    let per_round = ((ROUND.as_secs_f64() / per_call).ceil() as u64).max(1);
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..per_round {
            call()?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        rounds.push(elapsed * 1e6 / (per_round as f64 * batch as f64));
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds)
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}
