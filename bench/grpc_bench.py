"""Scenario (j) of bench/run.py: gRPC against REST on the same server.

    python3 bench/run.py --only grpc [--quick] [--rounds N]

One `serve -w 2` answers the same request three ways, interleaved round by round: KServe V2
REST with a JSON body (wrk), REST with the binary tensor extension (wrk), and gRPC ModelInfer
with raw_input_contents as tritonclient sends it (bench/grpc-load: tonic, one call in flight
per channel as wrk has one request in flight per connection), each with 64 connections, on
iris with 1 row and with 64 rows, and on the heaviest model of the corpus (corpus/torch/resnet,
one [1, 3, 32, 32] image). For each: requests per second, p99, and the server's CPU per request
(its processes' CPU time over the run ÷ requests; the load generators differ in their own cost
on the same 2 cores, so the comparison is the server's).

Then how gRPC channels spread: 16 channels opened together on a fresh `serve -w 2`, then 16
more after one worker was replaced (kill -TTOU then TTIN), with and without
`--max-connection-age 2`: requests each worker answered over 8 s (its `/status` on a
`--metrics-bind` listener), as a spread from the even split.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import struct
import subprocess
import threading
import time

import run
from run import IRIS_ONNX, Sampler, Server, log

GRPC_LOAD = os.path.join(run.TARGET, "release", "grpc-load")
RESNET = os.path.join(run.REPO, "corpus", "torch", "resnet.onnx")
CONNS = 64


def grpc_load(port: int, body_file: str, model: str, conns: int, seconds: float) -> dict:
    cmd = [GRPC_LOAD, "--addr", f"127.0.0.1:{port}", "--body", body_file, "--model", model,
           "--conns", str(conns), "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 90)
    for line in out.stdout.splitlines():
        if line.startswith("GRPCJSON "):
            return json.loads(line[len("GRPCJSON "):])
    raise RuntimeError(f"grpc-load gave no summary: rc {out.returncode}\n{out.stderr}")


def one(r, server: Server, how: str, case: dict) -> dict:
    """One measured run of `how` (json, binary, grpc) on `case`, after a warm-up."""
    body = case[how]
    path = f"/v2/models/{case['model']}/infer"
    json_length = r.bodies.json_length.get(body)
    file = r.bodies.files[body]

    def load(seconds: float) -> dict:
        if how == "grpc":
            return grpc_load(server.port, file, case["model"], CONNS, seconds)
        return run.wrk(server.port, path, file, CONNS, seconds, json_length)

    load(r.warmup)
    with Sampler(server.pid) as s:
        w = load(r.seconds)
    secs = w["duration_us"] / 1e6
    e = w["errors"]
    return {"rps": w["requests"] / secs if secs else 0.0,
            "p99_ms": w["latency_us"]["p99"] / 1000,
            "cpu_us": s.cpu_seconds() / max(w["requests"], 1) * 1e6,
            "errors": e["status"] + e["connect"] + e["read"] + e["write"] + e["timeout"]}


def binary_body(r, name: str, input_name: str, shape: list[int], data: list[float]) -> None:
    header = {"inputs": [{"name": input_name, "shape": shape, "datatype": "FP32",
                          "parameters": {"binary_data_size": 4 * len(data)}}],
              "parameters": {"binary_data_output": True}}
    r.bodies.add_binary(name, header, [struct.pack(f"<{len(data)}f", *data)])


def read_status(port: int) -> list[int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/status", headers={"Accept": "application/json"})
        ws = json.loads(conn.getresponse().read())["workers"]
    finally:
        conn.close()
    return [w["requests"] for w in sorted(ws, key=lambda w: w["pid"])]


def spread(counts: list[int]) -> float | None:
    if not counts or sum(counts) == 0:
        return None
    share = sum(counts) / len(counts)
    return round(max(abs(c - share) for c in counts) / share * 100, 1)


def spread_run(r, age: float | None) -> dict:
    """16 channels on a fresh server, a worker replaced, 16 more: requests per worker."""
    port, admin = r.port(), r.port()
    argv = [run.SERVE, "-w", "2", "-b", f"127.0.0.1:{port}", "--metrics-bind",
            f"127.0.0.1:{admin}", IRIS_ONNX]
    if age:
        argv[1:1] = ["--max-connection-age", str(age)]
    s = Server(f"serve-grpc-spread{'-age' if age else ''}", argv, port,
               ready=("POST", "/v2/models/iris/infer", r.bodies.data["iris_v2"]),
               describe="serve " + " ".join(argv[1:]).replace(run.REPO + "/", ""))
    run.wait_port_free(port)
    s.start(r.logdir)
    file = r.bodies.files["iris_v2"]
    try:
        # A long-lived client holds its channels; a worker is replaced under it (TTOU then
        # TTIN), so its channels reconnect to the survivor, as after a crash.
        results: dict = {}

        def first():
            results["first"] = grpc_load(port, file, "iris", 16, 12)
        t = threading.Thread(target=first)
        t.start()
        time.sleep(2)
        os.kill(s.pid, signal.SIGTTOU)
        time.sleep(1.5)
        os.kill(s.pid, signal.SIGTTIN)
        time.sleep(1.5)
        before = read_status(admin)
        time.sleep(6)
        after = read_status(admin)
        t.join()
    finally:
        s.stop()
    per_worker = [a - b for a, b in zip(after, before)] if len(after) == len(before) else after
    e = results["first"]["errors"]
    return {"age": age, "requests_per_worker_last_6s": per_worker,
            "spread_pct": spread(per_worker),
            "errors": e["status"] + e["connect"] + e["read"] + e["write"] + e["timeout"]}


def scenario(r) -> None:
    if not os.path.exists(GRPC_LOAD):
        raise RuntimeError(f"missing {GRPC_LOAD}: run bench/setup.sh (it builds grpc-load)")
    b = r.bodies
    b.add("iris_v2", run.v2_body("input", [1, 4], run.IRIS_ROW))
    rows = run.iris_rows(64)
    flat = [v for row in rows for v in row]
    b.add("iris_v2_64", run.v2_body("input", [64, 4], flat))
    binary_body(r, "iris_bin", "input", [1, 4], run.IRIS_ROW)
    binary_body(r, "iris_bin_64", "input", [64, 4], flat)
    shape = [1, 3, 32, 32]
    image = run.image_data(shape, 1)
    b.add("resnet_v2", run.v2_body("image", shape, image))
    binary_body(r, "resnet_bin", "image", shape, image)
    cases = [
        {"label": "iris 1 row", "model": "iris", "json": "iris_v2", "binary": "iris_bin",
         "grpc": "iris_v2"},
        {"label": "iris 64 rows", "model": "iris", "json": "iris_v2_64",
         "binary": "iris_bin_64", "grpc": "iris_v2_64"},
        {"label": "resnet [1,3,32,32]", "model": "resnet", "json": "resnet_v2",
         "binary": "resnet_bin", "grpc": "resnet_v2"},
    ]
    servers = {
        "iris": r.serve("serve-grpc-iris", [IRIS_ONNX],
                        ("POST", "/v2/models/iris/infer", b.data["iris_v2"])),
        "resnet": r.serve("serve-grpc-resnet", [RESNET],
                          ("POST", "/v2/models/resnet/infer", b.data["resnet_v2"])),
    }
    runs: dict = {(c["label"], how): [] for c in cases for how in ("json", "binary", "grpc")}
    try:
        for s in servers.values():
            run.wait_port_free(s.port)
            s.start(r.logdir)
        for rnd in range(r.rounds):
            log(f"-- grpc round {rnd + 1}/{r.rounds}")
            for c in cases:
                hows = ["json", "binary", "grpc"]
                hows = hows[rnd % 3:] + hows[:rnd % 3]
                for how in hows:
                    m = one(r, servers[c["model"]], how, c)
                    runs[(c["label"], how)].append(m)
                    log(f"   {c['label']:20} {how:6} {m['rps']:>8.0f} req/s  p99 "
                        f"{m['p99_ms']:6.2f} ms  cpu {m['cpu_us']:7.1f} us/req  "
                        f"errors {m['errors']}")
    finally:
        for s in servers.values():
            s.stop()
    out = []
    for c in cases:
        entry = {"label": c["label"]}
        for how in ("json", "binary", "grpc"):
            rs = runs[(c["label"], how)]
            entry[how] = {k: statistics.median(x[k] for x in rs)
                          for k in ("rps", "p99_ms", "cpu_us")} | {
                "errors": sum(x["errors"] for x in rs), "runs": rs}
        entry["grpc_cpu_over_binary"] = round(entry["grpc"]["cpu_us"] /
                                              entry["binary"]["cpu_us"], 3)
        out.append(entry)
    spreads = [spread_run(r, None), spread_run(r, 2)]
    for sp in spreads:
        log(f"   spread (age {sp['age']}): {sp['requests_per_worker_last_6s']} "
            f"= {sp['spread_pct']}% errors {sp['errors']}")
    r.results["scenarios"]["j-grpc"] = {"cases": out, "spread": spreads}
