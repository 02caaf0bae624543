"""Writes one corpus case labelled by the framework that trained the model (Keras, PyTorch).

Shared by keras/generate.py and torch/generate.py. The files are those of corpus_io.py
(`<case>.onnx` and `<case>.json`, the same JSON format, read by
crates/model/tests/corpus.rs), but the expected outputs are the framework's own answers
(Keras `model.predict`, a PyTorch module's forward), not onnxruntime's: what a user's
Python service answered before the model moved to serve.

A case stores one batch of rows. The framework is asked twice: for all the rows at once and
for each row alone (batch 1); both must agree within the corpus tolerance, and the stored
answer is the one for all the rows. The Rust test runs the stored rows at once on serve's
plan for any batch size, then each row alone on the plan for one row, so a case of 8 rows
checks batch 8 and batch 1. onnxruntime must answer the converted file the same within the
tolerance too, so that a stored answer is one the converted file can give: a case that a
converter gets wrong stops the generator instead of becoming a corpus entry.
"""

import os

import corpus_io
import numpy as np
import onnx

# The tolerance of crates/model/tests/corpus.rs: |got - want| <= ATOL + RTOL * |want|.
RTOL = 1e-5
ATOL = 1e-6


def worst(got, want):
    """The largest |got - want| / (ATOL + RTOL * |want|) over the elements: <= 1 is within
    the corpus tolerance. Labels (integers, strings) must be equal."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape}, expected {want.shape}")
    if want.dtype.kind not in "f":
        return 0.0 if np.array_equal(got, want) else float("inf")
    both_nan = np.isnan(got) & np.isnan(want)
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    ratio = np.where(both_nan, 0.0, err / (ATOL + RTOL * np.abs(want.astype(np.float64))))
    return float(np.nanmax(np.where(np.isnan(ratio), np.inf, ratio))) if ratio.size else 0.0


def batch_of(feeds, row):
    return {k: v[row : row + 1] for k, v in feeds.items()}


def write_case(directory, name, model_bytes, feeds, outputs, row_outputs):
    """Checks and writes a case.

    `feeds`: the ONNX input name -> numpy array of all the rows (strings as an object array);
    `outputs`: the ONNX output name -> the framework's answer for all the rows at once;
    `row_outputs`: one such dict per row, the framework's answer for that row alone.
    """
    model = onnx.load_from_string(model_bytes)
    graph_inputs = [i.name for i in model.graph.input]
    graph_outputs = [o.name for o in model.graph.output]
    if sorted(feeds) != sorted(graph_inputs):
        raise AssertionError(f"{name}: inputs {sorted(feeds)}, the file has {graph_inputs}")
    if sorted(outputs) != sorted(graph_outputs):
        raise AssertionError(f"{name}: outputs {sorted(outputs)}, the file has {graph_outputs}")
    rows = len(next(iter(feeds.values())))
    notes = []
    # Batch 1 against all the rows.
    batch1 = max(
        worst(row_outputs[r][k], outputs[k][r : r + 1]) for r in range(rows) for k in outputs
    )
    if batch1 > 1:
        raise AssertionError(f"{name}: batch 1 and batch {rows} answers differ ({batch1:.3g})")
    notes.append(f"batch 1 vs {rows} {batch1:.2g}")
    # onnxruntime on the converted file.
    sess = corpus_io.session(model)
    got = dict(zip(graph_outputs, sess.run(graph_outputs, feeds), strict=True))
    ort = max(worst(got[k], outputs[k]) for k in outputs)
    if ort > 1:
        raise AssertionError(f"{name}: onnxruntime answers differently ({ort:.3g})")
    notes.append(f"onnxruntime {ort:.2g}")
    with open(os.path.join(directory, f"{name}.onnx"), "wb") as f:
        f.write(model_bytes)
    case = {
        "inputs": {k: corpus_io._tensor(feeds[k]) for k in graph_inputs},
        "outputs": {k: corpus_io._tensor(outputs[k]) for k in graph_outputs},
    }
    with open(os.path.join(directory, f"{name}.json"), "w") as f:
        f.write(corpus_io._dump(case))
    corpus_io.WRITTEN.setdefault(directory, set()).add(name)
    dims = ", ".join(
        f"{i.name} {[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]}"
        for i in list(model.graph.input) + list(model.graph.output)
    )
    print(f"{name}: {len(model_bytes)} bytes; {dims}; worst error / tolerance: {', '.join(notes)}")

