"""onnxruntime's side of the ONNX-ML benchmark, and the report joining both sides.

    python bench/onnx_ml.py rows   CASE.json OUT.f32         # the stored input rows, raw float32
    python bench/onnx_ml.py ort    MODEL.onnx ROWS.f32 NAME  # time onnxruntime: JSON lines
    python bench/onnx_ml.py report LINES.jsonl OUT_DIR       # the table, and results JSON

`ort` times the model through an `InferenceSession` on one thread
(`intra_op_num_threads = 1`, as serve runs one tract call per worker thread), at batch 1
and 64, twice:
- `onnxruntime`: the file as exported, every output asked for, as a Python client does; a
  ZipMap output comes back as a list of dicts, whose making (in onnxruntime and in its
  Python binding) is part of what that client pays;
- `onnxruntime-tensors`: the same graph with each ZipMap replaced by an Identity, so that
  the probabilities come back as one float tensor, as serve answers them: onnxruntime's
  kernels with the least overhead. The target is judged against the faster of the two.
The figures are engine calls in-process (a Python call into onnxruntime, a Rust call into
tract), not servers. The method matches crates/onnx-ml/examples/bench.rs: a 0.3 s warm-up,
then 21 rounds of at least 40 ms each, each round's time per row; the median is reported.
bench/onnx_ml.sh runs both sides. A program that prints figures, never a test.
"""

import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

ROUNDS = 21
ROUND_S = 0.040
WARM_UP_S = 0.3
BATCHES = (1, 64)
TARGET = 1.5  # serve's time per row at batch 64, at most this many times onnxruntime's
SIDES = ("serve", "onnxruntime", "onnxruntime-tensors")


def rows(case_json, out):
    """The case's input `X` as raw little-endian float32 rows (what bench.rs reads)."""
    with open(case_json) as f:
        x = json.load(f)["inputs"]["X"]
    data = [float(v) for v in x["data"]]  # "NaN"/"Infinity" strings read as floats too
    np.asarray(data, dtype="<f4").reshape(x["shape"]).tofile(out)


def without_zipmap(model):
    """The model with each ZipMap replaced by an Identity: its output is then the float
    tensor [N, C] of probabilities; `None` when the model has no ZipMap."""
    from onnx import TensorProto, helper

    zipmaps = [n for n in model.graph.node if n.op_type == "ZipMap"]
    if not zipmaps:
        return None
    for node in zipmaps:
        identity = helper.make_node("Identity", list(node.input), list(node.output), name=node.name)
        node.CopyFrom(identity)
        for out in model.graph.output:
            if out.name in node.output:
                out.CopyFrom(helper.make_tensor_value_info(out.name, TensorProto.FLOAT, None))
    return model


def time_ort(model_path, rows_file, name):
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    variants = [("onnxruntime", onnx.load(model_path))]
    stripped = without_zipmap(onnx.load(model_path))
    if stripped is not None:
        variants.append(("onnxruntime-tensors", stripped))
    for side, model in variants:
        sess = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        (inp,) = sess.get_inputs()
        data = np.fromfile(rows_file, dtype="<f4").reshape(-1, inp.shape[1])
        for batch in BATCHES:
            feeds = {inp.name: np.ascontiguousarray(data[np.arange(batch) % len(data)])}
            rounds = time_calls(sess, feeds, batch)
            report_line(side, name, batch, rounds)


def time_calls(sess, feeds, batch):
    """The time per row of each round, in microseconds, sorted."""
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < WARM_UP_S:
        sess.run(None, feeds)
        calls += 1
    per_round = max(1, int(np.ceil(ROUND_S / ((time.perf_counter() - start) / calls))))
    rounds = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(per_round):
            sess.run(None, feeds)
        rounds.append((time.perf_counter() - t0) * 1e6 / (per_round * batch))
    return sorted(rounds)


def report_line(side, name, batch, rounds):
    median = rounds[len(rounds) // 2]
    print(
        f"{name:<28} batch {batch:>3}: {median:>9.2f} µs/row ({side}, median of {ROUNDS} "
        f"rounds, min {rounds[0]:.2f}, max {rounds[-1]:.2f})",
        file=sys.stderr,
    )
    line = {
        "side": side,
        "model": name,
        "batch": batch,
        "us_per_row": median,
        "min_us_per_row": rounds[0],
        "max_us_per_row": rounds[-1],
        "rounds": ROUNDS,
    }
    print(json.dumps(line))


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _us(side):
    return f"{side['us_per_row']:.2f}" if side else "-"


def report(lines_file, out_dir):
    """Joins both sides' lines into the table and writes `onnx_ml-<run>.json` and
    `onnx_ml-latest.json` in `out_dir`."""
    figures = {}
    with open(lines_file) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                figures.setdefault((r["model"], r["batch"]), {})[r["side"]] = r
    header = f"{'model':<26} {'batch':>5} {'serve':>8} {'ORT':>8} {'ORT-t':>8} {'ratio':>6}  target"
    print("µs per row; ORT: the file as exported (ZipMap to dicts), ORT-t: ZipMap removed;")
    print(f"ratio: serve over the faster ORT figure; target: at most {TARGET}x at batch 64\n")
    print(header)
    print("-" * len(header))
    results = []
    for (model, batch), sides in sorted(figures.items()):
        serve = sides.get("serve")
        orts = [s for s in (sides.get("onnxruntime"), sides.get("onnxruntime-tensors")) if s]
        best = min((s["us_per_row"] for s in orts), default=None)
        ratio = serve["us_per_row"] / best if serve and best else None
        met = ratio <= TARGET if batch == 64 and ratio is not None else None
        target = {True: "met", False: "missed", None: ""}[met]
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        print(
            f"{model:<26} {batch:>5} {_us(serve):>8} {_us(sides.get('onnxruntime')):>8} "
            f"{_us(sides.get('onnxruntime-tensors')):>8} {shown:>6}  {target}"
        )
        results.append(
            {
                "model": model,
                "batch": batch,
                "us_per_row": {s: sides[s]["us_per_row"] for s in SIDES if s in sides},
                "ratio_to_fastest_onnxruntime": ratio,
                "target_met": met,
                "figures": sides,
            }
        )
    write_results(results, out_dir)


def write_results(results, out_dir):
    import onnxruntime

    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    here = os.path.dirname(os.path.abspath(__file__))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here
    ).stdout.strip()
    result = {
        "run_id": run_id,
        "what": "time per row of scikit-learn models: serve (tract + serve-onnx-ml, release, "
        "in-process) against onnxruntime (Python InferenceSession, one intra-op thread)",
        "method": f"0.3 s warm-up, then the median of {ROUNDS} rounds of >= 40 ms; serve at "
        "batch 1 on its one-row plan, at batch 64 on its plan for any batch size",
        "target": f"serve at most {TARGET}x the faster onnxruntime figure at batch 64",
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": load_average(),
        "commit": commit or None,
        "results": results,
    }
    os.makedirs(out_dir, exist_ok=True)
    for name in (f"onnx_ml-{run_id}.json", "onnx_ml-latest.json"):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    print(f"\nwritten: {os.path.join(out_dir, f'onnx_ml-{run_id}.json')} (and onnx_ml-latest.json)")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"rows": rows, "ort": time_ort, "report": report}[command](*args)
