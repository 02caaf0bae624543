"""The engines scenario of bench/run.py (issue 20): tract, serve's onnxruntime engine and
Python's onnxruntime on the heavy models at full size.

    python3 bench/run.py --only engines [--quick] [--rounds N] [--seconds S]

The models (`$BENCH_CACHE/models`, made by setup.sh --only engines): a ResNet-18-shaped CNN,
a 2-layer GRU classifier and a BERT-style encoder at full size (corpus/torch/generate.py
--full), and PP-OCR's det, cls and rec from the rapidocr wheel. Every request is KServe V2 with
the binary tensor extension (the JSON header, then the raw little-endian tensors; the output
asked in binary too), the same bytes on every side. onnxruntime is the library of the bench's
`py` venv, for serve (`--onnxruntime`) and for Python alike.

1. The model call: serve -w 1 on tract and on onnxruntime, requests one after the other on one
   connection, timed by serve's own `serve_inference_duration_seconds` (the _sum and _count
   deltas of GET /metrics around each run), against `session.run` in Python (one intra-op and
   one inter-op thread, as serve's default --model-threads 1). Per model, `--rounds` rounds
   share `--seconds` per engine, the engines' order rotated each round; medians of the rounds.
2. End to end: serve -w 2 --engine onnxruntime against gunicorn -w 2 + Flask + onnxruntime
   (peers/v2_binary.py: the same wire format parsed with np.frombuffer, answered in binary),
   8 and 64 connections, interleaved rounds as the other scenarios (run.Runner.run_group).
3. Memory of a worker (-w 1) before any request, after one, and after the timed calls: VmRSS,
   RssAnon and RssFile of /proc/PID/status.
4. Batching, the BERT-style encoder: one row of 64 tokens per request, 8 connections, serve -w 1
   on onnxruntime with dynamic batching (the default) and with --max-batch-size 1: rows per
   second, and the rows per call from `serve_batch_rows` over the measured run.
5. Idle: a worker holding an onnxruntime model, 1 s after a request: CPU ticks (utime + stime)
   of the process, all its threads (/proc/PID/stat, which keeps the ticks of a thread that
   exits meanwhile) before and after 10 s of idleness; and of the threads alive throughout
   (/proc/PID/task/*/stat).
"""

from __future__ import annotations

import array
import glob
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import time

import run
from run import CACHE, MODELS, PEERS, VENVS, Case, log

IDLE_SECONDS = 10
SETTLE = 1.0
PY = os.path.join(VENVS, "py", "bin", "python")


class Model:
    """A model of the scenario: its file's stem (serve's name for it), its inputs (name,
    datatype, shape, how its values are drawn) and the output asked for."""

    def __init__(self, name: str, about: str, inputs: list[tuple], output: str):
        self.name, self.about, self.inputs, self.output = name, about, inputs, output
        self.path = os.path.join(MODELS, f"{name}.onnx")
        self.infer = f"/v2/models/{name}/infer"

    def body(self, rows: int | None = None) -> tuple[dict, list[bytes]]:
        """The request: its JSON header and the inputs' bytes (`rows`: another batch size)."""
        header: dict = {"inputs": [], "outputs": [{"name": self.output,
                                                  "parameters": {"binary_data": True}}]}
        tensors = []
        for i, (name, datatype, shape, draw) in enumerate(self.inputs):
            shape = [rows or shape[0], *shape[1:]]
            data = values(datatype, shape, draw, seed=i)
            header["inputs"].append({"name": name, "shape": shape, "datatype": datatype,
                                     "parameters": {"binary_data_size": len(data)}})
            tensors.append(data)
        return header, tensors


def values(datatype: str, shape: list[int], draw: str, seed: int) -> bytes:
    """Little-endian bytes: uniform in [-1, 1] (images, sequences), token ids, or ones."""
    n = 1
    for d in shape:
        n *= d
    rng = random.Random(seed)
    if datatype == "FP32":
        a = array.array("f", (rng.uniform(-1, 1) for _ in range(n)))
    else:
        a = array.array("q", (rng.randrange(1, 1000) if draw == "ids" else 1 for _ in range(n)))
    return a.tobytes()  # this machine is little-endian, as the extension wants


MODEL_LIST = [
    Model("resnet18", "ResNet-18 layout, 1x3x224x224", [("image", "FP32", [1, 3, 224, 224], "")],
          "logits"),
    Model("gru", "2-layer GRU 128 wide, 4x50x32", [("sequence", "FP32", [4, 50, 32], "")],
          "logits"),
    Model("bert", "BERT-style, 4 layers, 256 wide, 2x64 tokens",
          [("input_ids", "INT64", [2, 64], "ids"), ("attention_mask", "INT64", [2, 64], "ones")],
          "logits"),
    Model("det", "PP-OCR det, 1x3x640x640", [("x", "FP32", [1, 3, 640, 640], "")],
          "fetch_name_0"),
    Model("cls", "PP-OCR cls, 1x3x48x192", [("x", "FP32", [1, 3, 48, 192], "")],
          "save_infer_model/scale_0.tmp_1"),
    Model("rec", "PP-OCR rec, 1x3x48x320", [("x", "FP32", [1, 3, 48, 320], "")],
          "fetch_name_0"),
]
BY_NAME = {m.name: m for m in MODEL_LIST}
END_TO_END = ["resnet18", "gru", "bert", "cls"]
ENGINES = ["tract", "onnxruntime", "python"]


def library() -> str | None:
    """onnxruntime's C library in the bench's py venv (the newest if several)."""
    found = glob.glob(os.path.join(VENVS, "py", "lib", "python3.*", "site-packages",
                                   "onnxruntime", "capi", "libonnxruntime.so.*"))
    return max(found, key=lambda p: [int(x) for x in re.findall(r"\d+", os.path.basename(p))],
               default=None)


def version_of(lib: str | None) -> str | None:
    """The version in the library's file name (libonnxruntime.so.1.31.1)."""
    m = re.search(r"\.so\.([0-9.]+)$", lib or "")
    return m[1] if m else None


# ---------------------------------------------------------------------------------------------
# What a server says of itself: /metrics, /proc

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(port: int) -> list[tuple[str, dict, float]]:
    """GET /metrics: every sample as (name, labels, value)."""
    status, data, err = run.request(port, "GET", "/metrics", None, timeout=30)
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status} {err or ''}")
    out = []
    for line in data.decode().splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.append((m[1], dict(LABEL.findall(m[2] or "")), float(m[3])))
    return out


def value(snap: list, name: str, **labels) -> float:
    return sum(v for n, lab, v in snap if n == name and all(lab.get(k) == x
                                                            for k, x in labels.items()))


def rows_histogram(before: list, after: list, model: str) -> dict[str, int]:
    """serve_batch_rows over a run: calls per bucket (not cumulative), the empty ones left out."""
    def buckets(snap):
        return sorted(((float(lab["le"]), lab["le"], v) for n, lab, v in snap
                       if n == "serve_batch_rows_bucket" and lab.get("model") == model))
    prev_cum, out = 0.0, {}
    olds = {le: v for _, le, v in buckets(before)}
    for _, le, v in buckets(after):
        cum = v - olds.get(le, 0.0)
        if cum - prev_cum:
            out[f"<= {le}"] = int(cum - prev_cum)
        prev_cum = cum
    return out


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile of /proc/PID/status, in KiB, and the thread count."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(rest.split()[0])
                elif key == "Threads":
                    out["threads"] = int(rest)
    except OSError:
        pass
    return out


def threads_cpu(pid: int) -> dict[int, tuple[int, int]]:
    """Each live thread of `pid`: (utime + stime in ticks, nanoseconds on a CPU from
    schedstat, which sees what a tick is too coarse for), by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
            out[int(tid)] = (int(fields[11]) + int(fields[12]), ns)
        except (OSError, IndexError, ValueError):
            pass
    return out


def log_tail(server: run.Server) -> str:
    """The server log's last ERROR line (else its last line), shortened: why it failed."""
    server.logfile.flush()
    with open(server.logfile.name, errors="replace") as f:
        lines = [x.strip() for x in f.read().splitlines() if x.strip()]
    errors = [x for x in lines if "[ERROR]" in x]
    last = (errors or lines or ["(empty log)"])[-1]
    return last if len(last) <= 400 else last[:400] + "..."


# ---------------------------------------------------------------------------------------------
# 1. The model call, 3. memory, 5. idle

class Sequential:
    """Requests one after the other on one keep-alive connection."""

    def __init__(self, port: int, path: str, body: bytes, headers: dict):
        self.path, self.body, self.headers = path, body, headers
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def one(self) -> int:
        self.conn.request("POST", self.path, body=self.body, headers=self.headers)
        r = self.conn.getresponse()
        r.read()
        return r.status

    def run(self, seconds: float) -> tuple[int, float]:
        """At least one request, then more until `seconds` have passed: (requests, seconds)."""
        n, t0 = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - t0 < seconds:
            status = self.one()
            if status != 200:
                raise RuntimeError(f"POST {self.path} answered {status}")
            n += 1
        return n, time.perf_counter() - t0

    def close(self) -> None:
        self.conn.close()


def serve_round(server: run.Server, client: Sequential, model: str, seconds: float) -> dict:
    """One timed run: the model's time per request and per call, from serve's metrics."""
    before = metrics(server.port)
    n, wall = client.run(seconds)
    after = metrics(server.port)
    name = "serve_inference_duration_seconds"
    total = value(after, f"{name}_sum", model=model) - value(before, f"{name}_sum", model=model)
    calls = value(after, f"{name}_count", model=model) - value(before, f"{name}_count",
                                                                model=model)
    return {"requests": n, "calls": int(calls), "ms_per_request": 1000 * total / n,
            "ms_per_call": 1000 * total / calls if calls else None,
            "round_trip_ms": 1000 * wall / n}


def python_round(m: Model, body_file: str, json_length: int, seconds: float) -> dict:
    out = subprocess.run([PY, os.path.join(PEERS, "v2_binary.py"), m.path, body_file,
                          str(json_length), str(seconds)], capture_output=True, text=True,
                         timeout=seconds + 300)
    if out.returncode != 0:
        raise RuntimeError(f"python onnxruntime on {m.name}: {out.stderr.strip()[-300:]}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return {"requests": d["calls"], "calls": d["calls"], "ms_per_request": d["mean_ms"],
            "ms_per_call": d["mean_ms"], "median_ms": d["median_ms"]}


def engine_args(lib: str) -> list[str]:
    return ["--engine", "onnxruntime", "--onnxruntime", lib]


def idle_seconds(r) -> float:
    return 3 if r.quick else IDLE_SECONDS


def fail(r, row: dict, engine: str, error: str, **extra) -> None:
    """Records why an engine has no figure for this model (and no further runs)."""
    row[engine] = dict(row.get(engine, {}), error=error, **extra)
    log(f"   !! {row['model']} on {engine}: {error}")
    r.anomalies.append(f"engines: {row['model']} on {engine}: {error}")


def open_engine(r, s: run.Server, m: Model, body: str, row: dict, engine: str):
    """Starts a -w 1 server, reads its worker's memory before any request and after one, and
    warms it up: a client on one connection to it, or None (why: in row[engine])."""
    run.wait_port_free(s.port)
    try:
        s.start(r.logdir)
        worker = run.children(s.pid)[0]
    except (RuntimeError, IndexError):
        fail(r, row, engine, f"did not start: {log_tail(s)}", command=s.describe)
        return None
    time.sleep(0.5)
    memory = {"before": status_kib(worker)}
    client = Sequential(s.port, m.infer, r.bodies.data[body], r.bodies.headers(body))
    try:
        status = client.one()
        memory["one_request"] = status_kib(worker)
        for _ in range(2 if status == 200 else 0):
            client.one()
    except (OSError, http.client.HTTPException) as e:
        status = f"{type(e).__name__}: {e}"
    if status != 200:
        client.close()
        fail(r, row, engine, f"answered {status}: {log_tail(s)}", command=s.describe,
             memory=memory)
        return None
    meta = json.loads(run.request(s.port, "GET", f"/v2/models/{m.name}", None)[1] or b"{}")
    row[engine] = {"command": s.describe, "worker": worker, "memory": memory,
                   "engine_reported": meta.get("parameters", {}).get("engine")}
    return client


def time_rounds(r, m: Model, body: str, servers: dict, clients: dict, row: dict) -> dict:
    """`--rounds` rounds sharing `--seconds` per engine, the engines' order rotated each round:
    each engine's runs."""
    rounds: dict[str, list[dict]] = {e: [] for e in ENGINES}
    each = r.seconds / r.rounds
    for i in range(r.rounds):
        for engine in ENGINES[i % 3:] + ENGINES[:i % 3]:
            try:
                if engine == "python" and "error" not in row.get("python", {}):
                    rounds[engine].append(python_round(m, r.bodies.files[body],
                                                       r.bodies.json_length[body], each))
                elif engine in clients:
                    rounds[engine].append(serve_round(servers[engine], clients[engine],
                                                      m.name, each))
            except (RuntimeError, OSError, http.client.HTTPException) as e:
                # Measured no further: the figure would mix runs with and without it.
                rounds[engine] = []
                if engine in clients:
                    clients.pop(engine).close()
                fail(r, row, engine, f"{type(e).__name__}: {e}")
    return rounds


def summarize(row: dict, rounds: dict) -> None:
    """Each engine's median time per request over the rounds, and its ratio to Python's."""
    for engine, rs in rounds.items():
        if rs:
            requests = sum(x["requests"] for x in rs)
            row.setdefault(engine, {}).update(
                runs=rs, requests=requests,
                ms_per_request=statistics.median(x["ms_per_request"] for x in rs),
                calls_per_request=sum(x["calls"] for x in rs) / requests)
    py = row.get("python", {}).get("ms_per_request")
    for engine in ("tract", "onnxruntime"):
        if py and row.get(engine, {}).get("ms_per_request"):
            row[engine]["x_python"] = row[engine]["ms_per_request"] / py
    log(f"   {row['model']:9} ms per request: " + ", ".join(
        f"{e} {row[e]['ms_per_request']:.2f} ({row[e]['requests']} requests)"
        if "ms_per_request" in row.get(e, {}) else f"{e} -" for e in ENGINES))


def calls_of_model(r, m: Model, lib: str, out: dict) -> None:
    """1, 3 and 5 for one model: both serve engines started side by side (-w 1), rounds of
    tract, serve's onnxruntime and Python's, then the onnxruntime worker left idle."""
    body = f"engines-{m.name}"
    r.bodies.add_binary(body, *m.body())
    # Ready when the worker answers (the proof child is gone then); liveness loads no model.
    live = ("GET", "/v2/health/live", None)
    servers = {"tract": r.serve(f"engines-tract-{m.name}", [m.path], live, workers=1),
               "onnxruntime": r.serve(f"engines-ort-{m.name}", [m.path], live, workers=1,
                                      extra=engine_args(lib))}
    row: dict = {"model": m.name, "about": m.about, "mib": os.path.getsize(m.path) / 2**20,
                 "python": {"command": "session.run in peers/v2_binary.py"}}
    clients: dict[str, Sequential] = {}
    try:
        for engine, s in servers.items():
            client = open_engine(r, s, m, body, row, engine)
            if client:
                clients[engine] = client
        rounds = time_rounds(r, m, body, servers, clients, row)
        for engine in clients:
            row[engine]["memory"]["after_calls"] = status_kib(row[engine]["worker"])
        if "onnxruntime" in clients:
            out["idle"].append(dict(idle(clients["onnxruntime"], row["onnxruntime"]["worker"],
                                         idle_seconds(r)), model=m.name, model_threads=1))
    finally:
        for c in clients.values():
            c.close()
        for s in servers.values():
            s.stop()
    summarize(row, rounds)
    out["calls"].append(row)


def idle_with_pool(r, lib: str, out: dict) -> None:
    """The idle check again with --model-threads 2, where onnxruntime has a pool thread that
    could spin between calls (with one thread the calling thread does all the work)."""
    m = BY_NAME["resnet18"]
    body = f"engines-{m.name}"
    s = r.serve("engines-ort-threads2", [m.path], ("GET", "/v2/health/live", None), workers=1,
                extra=[*engine_args(lib), "--model-threads", "2"])
    row: dict = {"model": m.name}
    try:
        client = open_engine(r, s, m, body, row, "onnxruntime")
        if client:
            x = idle(client, row["onnxruntime"]["worker"], idle_seconds(r))
            client.close()
            out["idle"].append(dict(x, model=m.name, model_threads=2))
    finally:
        s.stop()


def idle(client: Sequential, worker: int, seconds: float) -> dict:
    """A request, then the CPU ticks of the worker over `seconds` idle, from SETTLE seconds
    after the answer (the tail of the request's own work, its access log line and metrics, is
    accounted by then; a tick is 10 ms). The figure is the process's utime + stime
    (/proc/PID/stat), which keeps the time of threads that exit meanwhile (tokio retires an
    idle blocking thread after 10 s, taking its /proc/PID/task entry with it). The threads
    alive at both readings are summed too, in ticks and in CPU time to the nanosecond
    (/proc/PID/task/*/stat and schedstat): the process's ticks are its precise CPU time
    rounded, so a tick can appear for a few microseconds that cross a boundary."""
    client.one()
    time.sleep(SETTLE)
    before, threads = run.cpu_ticks(worker), threads_cpu(worker)
    time.sleep(seconds)
    after, threads_after = run.cpu_ticks(worker), threads_cpu(worker)
    alive = set(threads) & set(threads_after)
    x = {"seconds": seconds, "threads": len(threads), "threads_after": len(threads_after),
         "ticks_before": before, "ticks_after": after, "ticks_delta": after - before,
         "alive_threads_ticks_delta": sum(threads_after[t][0] - threads[t][0] for t in alive),
         "alive_threads_cpu_ms": sum(threads_after[t][1] - threads[t][1] for t in alive) / 1e6}
    log(f"   idle worker: {x['ticks_delta']} ticks in {seconds:g} s; threads "
        f"{x['threads']} -> {x['threads_after']}, those alive throughout "
        f"+{x['alive_threads_ticks_delta']} ticks, {x['alive_threads_cpu_ms']:.2f} ms on a CPU")
    return x


# ---------------------------------------------------------------------------------------------
# 2. End to end, 4. batching

def check_binary(data: bytes) -> bool:
    """A binary-extension answer: a JSON header whose outputs' sizes add up to what follows."""
    head, end = json.JSONDecoder().raw_decode(data.decode("latin-1"))
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    return bool(sizes) and end + sum(sizes) == len(data)


def end_to_end(r, m: Model, lib: str) -> None:
    body = f"engines-{m.name}"
    ready = ("POST", m.infer, r.bodies.data[body], r.bodies.headers(body))
    servers = {
        "serve": r.serve(f"engines-e2e-{m.name}", [m.path], ready, extra=engine_args(lib)),
        "gunicorn-flask-onnxruntime": r.gunicorn(
            f"engines-e2e-python-{m.name}", "py", "v2_binary:app", {"V2_MODELS": m.path}, ready),
    }
    cases = [Case("engines-e2e", name, name, m.infer, body, conns, check_binary)
             for conns in (8, 64) for name in servers]
    r.run_group(f"engines, end to end: {m.name}", servers, cases)


def batching(r, lib: str, out: dict) -> None:
    """BERT-style, one row per request, 8 connections: batching on and off, on onnxruntime."""
    m = BY_NAME["bert"]
    body = "engines-bert-1row"
    r.bodies.add_binary(body, *m.body(rows=1))
    ready = ("POST", m.infer, r.bodies.data[body], r.bodies.headers(body))
    servers = {"batching": r.serve("engines-bert-batching", [m.path], ready, workers=1,
                                   extra=engine_args(lib)),
               "no batching": r.serve("engines-bert-nobatch", [m.path], ready, workers=1,
                                      extra=[*engine_args(lib), "--max-batch-size", "1"])}
    runs: dict[str, list[dict]] = {k: [] for k in servers}
    log("== engines: batching, BERT-style, 1 row per request, 8 connections")
    try:
        for s in servers.values():
            run.wait_port_free(s.port)
            s.start(r.logdir)
        names = list(servers)
        for i in range(r.rounds):
            for label in names[i % 2:] + names[:i % 2]:
                x = batching_run(r, servers[label], m, body)
                runs[label].append(x)
                log(f"   {label:12} {x['rps']:8.1f} rows/s  p99 {x['p99_ms']:7.2f} ms  "
                    f"{x['rows_per_call'] or 0:.2f} rows per call  {x['histogram']}")
                if x["errors"]:
                    r.anomalies.append(f"engines batching {label}: {x['errors']} errors "
                                       f"{x['errors_detail']}")
    finally:
        for s in servers.values():
            s.stop()
    out["batching"] = [dict(batching_summary(rs), label=label, command=servers[label].describe,
                            conns=8) for label, rs in runs.items() if rs]


def batching_run(r, s: run.Server, m: Model, body: str) -> dict:
    """A warm-up, then a measured wrk run with serve_batch_rows read before and after it."""
    file, length = r.bodies.files[body], r.bodies.json_length[body]
    run.wrk(s.port, m.infer, file, 8, r.warmup, length)
    before = metrics(s.port)
    x = run.measure(s, m.infer, file, 8, r.seconds, 0, length)
    after = metrics(s.port)

    def delta(name):
        return value(after, name, model=m.name) - value(before, name, model=m.name)
    rows, calls = delta("serve_batch_rows_sum"), delta("serve_batch_rows_count")
    return dict(x, rows=int(rows), calls=int(calls), rows_per_call=rows / calls if calls else None,
                histogram=rows_histogram(before, after, m.name))


def batching_summary(rs: list[dict]) -> dict:
    """Medians of the runs' rows/s and p99; rows, calls and the histogram summed."""
    hist: dict[str, int] = {}
    for x in rs:
        for k, v in x["histogram"].items():
            hist[k] = hist.get(k, 0) + v
    rows, calls = sum(x["rows"] for x in rs), sum(x["calls"] for x in rs)
    return {"rows_per_s": statistics.median(x["rps"] for x in rs),
            "p99_ms": statistics.median(x["p99_ms"] for x in rs),
            "errors": sum(x["errors"] for x in rs), "rows": rows, "calls": calls,
            "rows_per_call": rows / calls if calls else None, "histogram": hist, "runs": rs}


# ---------------------------------------------------------------------------------------------

def scenario(r) -> None:
    lib = library()
    out: dict = {"calls": [], "onnxruntime": {"library": lib, "version": version_of(lib)},
                 "seconds_per_engine": r.seconds, "rounds": r.rounds,
                 "idle": [], "idle_seconds": idle_seconds(r), "settle_seconds": SETTLE,
                 "models": [{"name": m.name, "about": m.about,
                             "inputs": [{"name": i[0], "datatype": i[1], "shape": i[2]}
                                        for i in m.inputs]} for m in MODEL_LIST]}
    r.results["scenarios"]["engines"] = out
    missing = [m.path for m in MODEL_LIST if not os.path.exists(m.path)]
    if lib is None or missing:
        why = (f"no onnxruntime library in {VENVS}/py" if lib is None else
               f"missing {', '.join(missing)}")
        raise RuntimeError(f"{why}: run bench/setup.sh --only engines first (cache {CACHE})")
    log(f"== engines: the model call on tract, serve's onnxruntime {out['onnxruntime']['version']} "
        f"and Python's, {r.rounds} rounds sharing {r.seconds}s per engine and model")
    for m in MODEL_LIST:
        calls_of_model(r, m, lib, out)
    idle_with_pool(r, lib, out)
    for name in END_TO_END:
        end_to_end(r, BY_NAME[name], lib)
    batching(r, lib, out)


def targets(results: dict) -> list[dict]:
    out = []
    sc = results["scenarios"].get("engines")
    if not sc:
        return out

    def add(name, value, goal, met, detail):
        out.append({"target": name, "value": value, "goal": goal, "met": met, "detail": detail})

    for row in sc["calls"]:
        ort, py, tract = (row.get(e, {}).get("ms_per_request") for e in
                          ("onnxruntime", "python", "tract"))
        if ort and py:
            add(f"engines: {row['model']} model call, serve onnxruntime / Python",
                round(ort / py, 3), "<= 1.05", ort / py <= 1.05,
                f"serve {ort:.3f} ms, Python {py:.3f} ms")
        if tract and py:
            add(f"engines: {row['model']} model call, tract / Python onnxruntime",
                round(tract / py, 2), "(no target)", None, f"tract {tract:.3f} ms")
    for d in sc["idle"]:
        add(f"engines: idle onnxruntime worker, {d['model']}, --model-threads "
            f"{d['model_threads']}: CPU ticks", d["ticks_delta"], "0 (unchanged)",
            d["ticks_delta"] == 0, f"{d['ticks_before']} -> {d['ticks_after']} ticks over "
            f"{d['seconds']:g} s; threads {d['threads']} -> {d['threads_after']}")
    e2e = results["scenarios"].get("engines-e2e", {}).get("cases", [])
    for c in e2e:
        if c["label"] != "serve":
            continue
        p = next((x for x in e2e if x["body"] == c["body"] and x["conns"] == c["conns"]
                  and x["label"] != "serve"), None)
        if not p or not p["median"]["rps"]:
            continue
        s, q = c["median"], p["median"]
        model = c["body"].removeprefix("engines-")
        r = s["rps"] / q["rps"]
        add(f"engines: {model} {c['conns']} conns, req/s serve / Python", round(r, 2),
            ">= 1.0", r >= 1.0, f"serve {s['rps']:.1f}/s, Python {q['rps']:.1f}/s")
        add(f"engines: {model} {c['conns']} conns, p99 serve < Python", round(s["p99_ms"], 2),
            f"< {q['p99_ms']:.2f} ms", s["p99_ms"] < q["p99_ms"],
            f"serve {s['p99_ms']:.2f} ms, Python {q['p99_ms']:.2f} ms")
    b = {x["label"]: x for x in sc.get("batching", [])}
    if "batching" in b and "no batching" in b and b["no batching"]["rows_per_s"]:
        on, off = b["batching"], b["no batching"]
        r = on["rows_per_s"] / off["rows_per_s"]
        add("engines: BERT-style 8 conns, rows/s batching / not", round(r, 2), ">= 1.0",
            r >= 1.0, f"on {on['rows_per_s']:.1f}/s ({on['rows_per_call'] or 0:.2f} rows per "
            f"call), off {off['rows_per_s']:.1f}/s")
    return out


def table(results: dict) -> str:
    if "engines" not in results["scenarios"]:
        return ""
    import report
    text = "\n" + "\n".join(report.engines(results)) + "\n"
    print(text)
    return text
