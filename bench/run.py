#!/usr/bin/env python3
"""serve's benchmark harness: serve against the HTTP ceiling and the stacks users run today.

    bench/run.sh [--quick]            # setup (venvs, models, release builds), then this
    python3 bench/run.py [--quick] [--only iris,titanic,heavy,cold,memory,cost,balance,grpc,tls] [--rounds N]
    python3 bench/run.py --only engines   # tract, serve's onnxruntime, Python's (bench/engines.py)

A program that prints figures and writes results, never a test that asserts. It needs only the
Python standard library; the peers run in the venvs that bench/setup.sh makes, and the chart is
drawn by bench/chart.py in the bench venv (matplotlib).

Every server binds 127.0.0.1 on its own port, runs in its own process group with
PR_SET_PDEATHSIG (it dies if this harness dies), and is stopped (TERM, then KILL of the whole
group) when its scenario ends, on error, and at exit. Every load run is wrk with a fixed
duration. See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import datetime as dt
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
LUA = os.path.join(HERE, "post.lua")
RESULTS = os.path.join(HERE, "results")

VENVS = os.environ.get("BENCH_VENVS", "/work/bench-venvs")
CACHE = os.environ.get("BENCH_CACHE", "/work/bench-cache")
TARGET = os.environ.get("BENCH_TARGET_DIR", "/work/target-bench")
# BENCH_SERVE: another serve binary (an older build, to compare) in place of this tree's.
SERVE = os.environ.get("BENCH_SERVE") or os.path.join(TARGET, "release", "serve")
CEILING = os.path.join(TARGET, "release", "ceiling")
MODELS = os.path.join(CACHE, "models")

IRIS_ONNX = os.path.join(REPO, "examples", "iris", "model.onnx")
TITANIC_DIR = os.path.join(REPO, "examples", "titanic")

WORKERS = 2  # every stack runs 2 workers (2 cores), as in the issue
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# /proc: process trees, memory, CPU

def children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


def rss_kib(pid: int) -> int:
    """Resident set size from /proc/PID/statm (cheap enough to sample often)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def proc_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


class Sampler:
    """Samples a process tree every `every` seconds: peak total RSS, CPU seconds of the tree."""

    def __init__(self, root: int, every: float = 0.1):
        self.root, self.every = root, every
        self.peak_kib = 0
        self.base: dict[int, int] = {p: cpu_ticks(p) for p in tree(root)}
        self.last: dict[int, int] = dict(self.base)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        pids = tree(self.root)
        self.peak_kib = max(self.peak_kib, sum(rss_kib(p) for p in pids))
        for p in pids:
            t = cpu_ticks(p)
            if t:
                self.last[p] = t

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self):
        self._sample()
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self._sample()

    def cpu_seconds(self) -> float:
        return sum(t - self.base.get(p, 0) for p, t in self.last.items()) / CLK_TCK


# ---------------------------------------------------------------------------------------------
# Servers

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    # Die with the harness, whatever kills it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


LIVE: dict[int, "Server"] = {}


class Server:
    def __init__(self, name: str, argv: list[str], port: int, env: dict | None = None,
                 cwd: str | None = None, ready: tuple | None = None, ready_timeout: float = 60,
                 describe: str = ""):
        self.name, self.argv, self.port = name, argv, port
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd or REPO
        self.ready = ready  # (method, path, body bytes[, headers])
        self.ready_timeout = ready_timeout
        self.describe = describe or " ".join(os.path.basename(a) if i == 0 else a
                                             for i, a in enumerate(argv))
        self.proc: subprocess.Popen | None = None
        self.logfile = None

    def start(self, logdir: str) -> float:
        """Starts the server; returns seconds until it answered its ready request with 200."""
        os.makedirs(logdir, exist_ok=True)
        self.logfile = open(os.path.join(logdir, f"{self.name}.log"), "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self.logfile, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_child_setup)
        LIVE[self.proc.pid] = self
        if self.ready is None:
            return 0.0
        method, path, body, *headers = self.ready
        deadline = t0 + self.ready_timeout
        last = None
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting "
                                   f"(log: {self.logfile.name})")
            status, _, err = request(self.port, method, path, body, timeout=30,
                                     headers=headers[0] if headers else None)
            if status == 200:
                return time.perf_counter() - t0
            last = status or err
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {self.ready_timeout}s (last: {last}; "
                           f"log: {self.logfile.name})")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = tree(self.proc.pid)
        gone, waited = contextlib.suppress(ProcessLookupError), contextlib.suppress(
            subprocess.TimeoutExpired)
        with gone:
            os.killpg(self.proc.pid, signal.SIGTERM)
        with waited:
            self.proc.wait(timeout=5)
        # Whatever is left of the group or the tree (a worker slow to drain): KILL.
        with gone:
            os.killpg(self.proc.pid, signal.SIGKILL)
        for p in pids:
            with gone:
                os.kill(p, signal.SIGKILL)
        with waited:
            self.proc.wait(timeout=5)
        LIVE.pop(self.proc.pid, None)
        self.proc = None
        if self.logfile:
            self.logfile.close()


def stop_all() -> None:
    for s in list(LIVE.values()):
        s.stop()


atexit.register(stop_all)


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def request(port: int, method: str, path: str, body: bytes | None, timeout: float = 10,
            headers: dict | None = None):
    """One HTTP request on a fresh connection: (status, body, error). The headers are JSON's
    Content-Type when there is a body, unless `headers` are given."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        if headers is None:
            headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data, None
    except (OSError, http.client.HTTPException) as e:
        return 0, b"", f"{type(e).__name__}: {e}"


def burst(port: int, method: str, path: str, body: bytes, n: int) -> list[int]:
    """n concurrent requests, each on its own new connection: the statuses."""
    out: list[int] = []
    ts = [threading.Thread(target=lambda: out.append(request(port, method, path, body, 60)[0]))
          for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def wait_port_free(port: int, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Load: wrk

def wrk(port: int, path: str, body_file: str, conns: int, seconds: float,
        json_length: int | None = None) -> dict:
    threads = 1 if conns == 1 else 2
    # wrk takes whole seconds only ("3.0s" is a usage error).
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "30s",
           "-s", LUA, f"http://127.0.0.1:{port}{path}"]
    return wrk_json(cmd, seconds, body_file, json_length)


def wrk_json(cmd: list[str], seconds: float, body_file: str | None = None,
             json_length: int | None = None) -> dict:
    """Runs a wrk command line with post.lua; its summary. Without `body_file`, the iris V1
    row (scenario (i) sends only that). With `json_length`, the body is KServe V2's binary
    extension: a JSON header of that many bytes, then the tensors."""
    if body_file is None:
        body_file = os.path.join(RESULTS, "tmp", "iris_v1.json")
        os.makedirs(os.path.dirname(body_file), exist_ok=True)
        with open(body_file, "wb") as f:
            f.write(json.dumps({"instances": [IRIS_ROW]}).encode())
    env = dict(os.environ, WRK_BODY=body_file)
    if json_length is not None:
        env["WRK_JSON_LENGTH"] = str(json_length)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 90)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"wrk gave no summary: rc {out.returncode}\n{out.stdout}\n{out.stderr}")


def measure(server: Server, path: str, body_file: str, conns: int, seconds: float,
            warmup: float, json_length: int | None = None) -> dict:
    if warmup > 0:
        wrk(server.port, path, body_file, conns, warmup, json_length)
    with Sampler(server.pid) as s:
        w = wrk(server.port, path, body_file, conns, seconds, json_length)
    pss = sum(pss_kib(p) for p in tree(server.pid))
    e = w["errors"]
    lat = w["latency_us"]
    secs = w["duration_us"] / 1e6
    return {
        "rps": w["requests"] / secs if secs else 0.0,
        "requests": w["requests"],
        "p50_ms": lat["p50"] / 1000, "p99_ms": lat["p99"] / 1000, "p999_ms": lat["p999"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": e["status"] + e["connect"] + e["read"] + e["write"] + e["timeout"],
        "non2xx": e["status"], "socket_errors": e["connect"] + e["read"] + e["write"] + e["timeout"],
        "errors_detail": e,
        "peak_rss_mib": s.peak_kib / 1024, "pss_mib": pss / 1024,
        "cpu_s": s.cpu_seconds(), "seconds": secs,
    }


def perf_malloc_probes(perf: str | None) -> tuple[list[str], str]:
    """Adds uprobes on glibc's malloc, calloc and realloc; returns their event names, or why
    there are none (no perf, not root, no libc found)."""
    if not perf:
        return [], "perf is not installed"
    if os.geteuid() != 0:
        return [], "uprobes need root"
    libc = next((p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6",
                             "/lib64/libc.so.6") if os.path.exists(p)), None)
    if not libc:
        return [], "no libc.so.6 found"
    fns = ("malloc", "calloc", "realloc")
    for fn in fns:  # fails harmlessly when the probe exists from an earlier run
        subprocess.run([perf, "probe", "-q", "-x", libc, fn], capture_output=True)
    listed = subprocess.run([perf, "probe", "-l"], capture_output=True, text=True).stdout
    events = [f"probe_libc:{fn}" for fn in fns if f"probe_libc:{fn}" in listed]
    return events, "" if events else "perf probe could not add uprobes on libc"


def perf_counts(perf: str, probes: list[str], pid: int, port: int, path: str, body_file: str,
                seconds: float) -> dict:
    """Allocations and system calls per request of process `pid` under load."""
    events = ",".join(probes + ["raw_syscalls:sys_enter"])
    stat = subprocess.Popen([perf, "stat", "-x", ",", "-e", events, "-p", str(pid), "--",
                             "sleep", str(seconds + 1)], stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    w = wrk(port, path, body_file, 64, seconds)
    _, err = stat.communicate(timeout=seconds + 30)
    counts = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].strip().isdigit():
            counts[parts[2]] = int(parts[0])
    n = max(w["requests"], 1)
    allocs = sum(counts.get(p, 0) for p in probes)
    return {"allocs": allocs / n if probes else None,
            "syscalls": counts.get("raw_syscalls:sys_enter", 0) / n}


def crate_of(dso: str, sym: str, kernel: bool) -> str:
    """The part of the program a sampled function belongs to."""
    if kernel:
        return "kernel"
    if "libc" in dso:
        if any(k in sym for k in ("malloc", "free", "_int_", "unlink_chunk", "consolidate",
                                  "realloc", "calloc")):
            return "libc malloc/free"
        return "libc memcpy/memmove" if "mem" in sym else "libc other"
    head = sym.lstrip("<&* ").split("::")[0].split("<")[0].split(" ")[0]
    if head.startswith("serve"):
        return head.replace("_", "-")
    for name, group in (("tract", "tract"), ("ndarray", "tract"), ("hyper", "hyper"),
                        ("httparse", "hyper"), ("http", "hyper"), ("tokio", "tokio"),
                        ("mio", "tokio"), ("serde", "serde"), ("zmij", "serde"),
                        ("bytes", "bytes"), ("core", "std"), ("alloc", "std"), ("std", "std")):
        if head.startswith(name):
            return group
    return "other"


def perf_profile(perf: str, pid: int, port: int, path: str, body_file: str,
                 seconds: float) -> dict | None:
    """Where the CPU of process `pid` goes under load: percent of samples by crate."""
    data = os.path.join("/tmp", f"serve-bench-perf-{pid}.data")
    rec = subprocess.Popen([perf, "record", "-q", "-F", "1999", "-p", str(pid), "-o", data,
                            "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    wrk(port, path, body_file, 64, seconds)
    rec.wait(timeout=seconds + 30)
    rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                          "--sort", "dso,sym", "--percent-limit", "0"], capture_output=True,
                         text=True)
    with contextlib.suppress(OSError):
        os.remove(data)
    groups: dict[str, float] = {}
    for line in rep.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[0].endswith("%") or line.lstrip().startswith("#"):
            continue
        try:
            pct = float(parts[0][:-1])
        except ValueError:
            continue
        dso, kind, sym = parts[1], parts[2], parts[3]
        g = crate_of(dso, sym, kind == "[k]")
        groups[g] = groups.get(g, 0.0) + pct
    if not groups:
        return None
    return {k: round(v, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def median_of(runs: list[dict]) -> dict:
    keys = ["rps", "p50_ms", "p99_ms", "p999_ms", "max_ms", "errors", "non2xx", "socket_errors",
            "peak_rss_mib", "pss_mib", "cpu_s"]
    m = {k: statistics.median(r[k] for r in runs) for k in keys}
    m["errors_total"] = sum(r["errors"] for r in runs)  # over every round, not a median
    m["requests_total"] = sum(r["requests"] for r in runs)
    m["cpu_ms_per_1k_req"] = statistics.median(
        1000 * r["cpu_s"] / r["requests"] * 1000 if r["requests"] else 0 for r in runs)
    m["rounds"] = len(runs)
    m["rps_all"] = [round(r["rps"], 1) for r in runs]
    return m


# ---------------------------------------------------------------------------------------------
# Requests

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def iris_rows(n: int) -> list[list[float]]:
    rng = random.Random(64)
    base = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    return [[round(v + rng.uniform(-0.3, 0.3), 1) for v in base[i % 3]] for i in range(n)]


def v2_body(name: str, shape: list[int], data: list[float]) -> bytes:
    return json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                   "data": data}]}, separators=(",", ":")).encode()


def image_data(shape: list[int], seed: int) -> list[float]:
    n = 1
    for d in shape:
        n *= d
    rng = random.Random(seed)
    return [round(rng.uniform(-1, 1), 3) for _ in range(n)]


class Bodies:
    def __init__(self, d: str):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.files: dict[str, str] = {}
        self.data: dict[str, bytes] = {}
        self.json_length: dict[str, int] = {}  # KServe V2 binary bodies: their JSON's length

    def add(self, name: str, data: bytes) -> str:
        p = os.path.join(self.dir, name + ".json")
        with open(p, "wb") as f:
            f.write(data)
        self.files[name], self.data[name] = p, data
        return p

    def add_binary(self, name: str, header: dict, tensors: list[bytes]) -> str:
        """A KServe V2 binary-extension body: the JSON `header`, then the tensors' bytes."""
        head = json.dumps(header, separators=(",", ":")).encode()
        p = os.path.join(self.dir, name + ".bin")
        data = head + b"".join(tensors)
        with open(p, "wb") as f:
            f.write(data)
        self.files[name], self.data[name], self.json_length[name] = p, data, len(head)
        return p

    def headers(self, name: str) -> dict | None:
        """The request headers a body needs (None: JSON's)."""
        n = self.json_length.get(name)
        return None if n is None else {"Inference-Header-Content-Length": str(n),
                                       "Content-Type": "application/octet-stream"}


# ---------------------------------------------------------------------------------------------
# Scenarios

class Case:
    """One load configuration: a server, a route, a body, a connection count."""

    def __init__(self, scenario: str, label: str, server: str, path: str, body: str, conns: int,
                 check=None, seconds: float | None = None, warmup: float | None = None,
                 settle: float = 0):
        self.scenario, self.label, self.server = scenario, label, server
        self.path, self.body, self.conns, self.check = path, body, conns, check
        # Per-case overrides, for a stack so slow that a short run completes no request.
        self.seconds, self.warmup, self.settle = seconds, warmup, settle
        self.runs: list[dict] = []

    @property
    def key(self) -> str:
        return f"{self.scenario}|{self.label}|{self.conns}"


def check_iris_v1(data: bytes) -> bool:
    return json.loads(data)["predictions"][0]["label"] == 0


def check_iris_v2(data: bytes) -> bool:
    outs = {o["name"]: o["data"] for o in json.loads(data)["outputs"]}
    lab = outs.get("label", outs.get("predict"))
    return lab[0] == 0


def check_titanic(data: bytes) -> bool:
    p = json.loads(data)["predict"]
    return 0.0 < p < 0.5  # a 22-year-old man in 3rd class, per both models


def check_v2_any(data: bytes) -> bool:
    return len(json.loads(data)["outputs"]) > 0


def check_anything(data: bytes) -> bool:
    return True


class Runner:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.rounds = args.rounds or (1 if self.quick else 3)
        self.seconds = args.seconds or (3 if self.quick else 10)
        self.warmup = args.warmup if args.warmup is not None else (1 if self.quick else 2)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = stamp + ("-quick" if self.quick else "")
        self.tmp = os.path.join(RESULTS, "tmp", self.run_id)
        self.logdir = os.path.join(self.tmp, "logs")
        self.bodies = Bodies(os.path.join(self.tmp, "bodies"))
        self.next_port = 18100 + random.Random().randrange(0, 40) * 50
        self.anomalies: list[str] = []
        self.results: dict = {"scenarios": {}}

    def port(self) -> int:
        self.next_port += 1
        return self.next_port

    # -- servers ------------------------------------------------------------------------------

    def serve(self, name: str, model_args: list[str], ready, extra=(), workers=WORKERS,
              binary: str = SERVE) -> Server:
        port = self.port()
        argv = [binary, "-w", str(workers), "-b", f"127.0.0.1:{port}", *extra, *model_args]
        return Server(name, argv, port, ready=ready,
                      describe="serve " + " ".join(argv[1:]).replace(REPO + "/", ""))

    def ceiling(self, name: str, extra=(), workers=WORKERS) -> Server:
        port = self.port()
        argv = [CEILING, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--max-seconds", "7200",
                *extra]
        return Server(name, argv, port, ready=("POST", "/", b"{}"),
                      describe="ceiling " + " ".join(argv[1:]))

    def gunicorn(self, name: str, venv: str, module: str, env: dict, ready, extra=(),
                 ready_timeout: float = 60) -> Server:
        port = self.port()
        argv = [os.path.join(VENVS, venv, "bin", "gunicorn"), "-w", str(WORKERS), "-b",
                f"127.0.0.1:{port}", "--chdir", PEERS, *extra, module]
        return Server(name, argv, port, env=env, ready=ready, ready_timeout=ready_timeout,
                      describe=f"gunicorn -w {WORKERS} {' '.join(extra)} {module}".replace("  ", " "))

    def granian(self, name: str, module: str, env: dict, ready) -> Server:
        port = self.port()
        argv = [os.path.join(VENVS, "py", "bin", "granian"), "--interface", "wsgi", "--workers",
                str(WORKERS), "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                "--working-dir", PEERS, module]
        return Server(name, argv, port, env=env, ready=ready,
                      describe=f"granian --interface wsgi --workers {WORKERS} {module}")

    def mlserver(self, name: str, ready) -> Server:
        port = self.port()
        repo = os.path.join(self.tmp, "mlserver-repo")
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(os.path.join(PEERS, "mlserver"), repo)
        shutil.copy(os.path.join(CACHE, "iris-logreg.joblib"),
                    os.path.join(repo, "iris", "model.joblib"))
        with open(os.path.join(repo, "settings.json")) as f:
            settings = json.load(f)
        settings.update(http_port=port, grpc_port=self.port(), metrics_port=self.port())
        with open(os.path.join(repo, "settings.json"), "w") as f:
            json.dump(settings, f, indent=2)
        argv = [os.path.join(VENVS, "mlserver", "bin", "mlserver"), "start", repo]
        return Server(name, argv, port, ready=ready, ready_timeout=120,
                      describe="mlserver start (parallel_workers 0, scikit-learn runtime)")

    # -- load groups --------------------------------------------------------------------------

    def run_group(self, title: str, servers: dict[str, Server], cases: list[Case],
                  prime: dict[str, float] | None = None) -> None:
        """Starts the servers, checks one answer per case, then runs the cases in interleaved
        rounds (A B C, B C A, C A B...), a warm-up before every measurement."""
        log(f"== {title}: starting {len(servers)} servers")
        started = {}
        try:
            for name, s in servers.items():
                wait_port_free(s.port)
                t = s.start(self.logdir)
                started[name] = s
                log(f"   {name}: ready in {t:.2f}s ({s.describe})")
            for c in cases:
                s = servers[c.server]
                status, data, err = request(s.port, "POST", c.path, self.bodies.data[c.body],
                                            timeout=60, headers=self.bodies.headers(c.body))
                ok = status == 200 and (c.check is None or _safe(c.check, data))
                c.sample = data[:300].decode(errors="replace")
                if not ok:
                    msg = (f"{c.scenario} {c.label}: wrong or failed answer to POST {c.path} "
                           f"({s.describe}): status {status} {err or ''} {c.sample!r}")
                    self.anomalies.append(msg)
                    log("   !! " + msg)
            for name, secs in (prime or {}).items():
                for c in cases:
                    if c.server == name:
                        log(f"   priming {name} for {secs}s (lazy model loads in every worker)")
                        wrk(servers[name].port, c.path, self.bodies.files[c.body], c.conns, secs,
                            self.bodies.json_length.get(c.body))
                        break
            for r in range(self.rounds):
                order = cases[r % len(cases):] + cases[:r % len(cases)]
                log(f"-- round {r + 1}/{self.rounds}: {len(order)} runs of {self.seconds}s")
                for c in order:
                    s = servers[c.server]
                    if s.proc is None or s.proc.poll() is not None:
                        msg = f"{c.server} is not running (exit {s.proc and s.proc.returncode})"
                        self.anomalies.append(msg)
                        log("   !! " + msg)
                        continue
                    if c.settle:
                        time.sleep(c.settle)  # let a slow server drain what the last run queued
                    m = measure(s, c.path, self.bodies.files[c.body], c.conns,
                                c.seconds or self.seconds,
                                self.warmup if c.warmup is None else c.warmup,
                                self.bodies.json_length.get(c.body))
                    c.runs.append(m)
                    flag = f"  ERRORS {m['errors']} {m['errors_detail']}" if m["errors"] else ""
                    log(f"   {c.scenario:8} {c.label:34} c={c.conns:<3} {m['rps']:>10.0f} req/s  "
                        f"p50 {m['p50_ms']:7.2f}  p99 {m['p99_ms']:8.2f} ms  "
                        f"rss {m['peak_rss_mib']:7.1f} MiB  cpu {m['cpu_s']:5.1f}s{flag}")
                    if m["errors"]:
                        self.anomalies.append(
                            f"{c.scenario} {c.label} c={c.conns} round {r + 1}: {m['errors']} errors "
                            f"{m['errors_detail']} of {m['requests']} requests ({s.describe})")
        finally:
            for s in started.values():
                s.stop()
        for c in cases:
            if not c.runs:
                continue
            sc = self.results["scenarios"].setdefault(c.scenario, {"cases": []})
            s = servers[c.server]
            sc["cases"].append({
                "label": c.label, "server": c.server, "command": s.describe, "path": c.path,
                "body": c.body, "body_bytes": len(self.bodies.data[c.body]), "conns": c.conns,
                "seconds": c.seconds or self.seconds,
                "sample_answer": getattr(c, "sample", ""), "median": median_of(c.runs),
                "runs": c.runs,
            })

    # -- scenarios ----------------------------------------------------------------------------

    def scenario_iris(self) -> None:
        """(a) batch 1 V1/V2, (c) 64 rows, (e) connection scaling, batching on/off, reuse-port."""
        b = self.bodies
        b.add("iris_v1", json.dumps({"instances": [IRIS_ROW]}).encode())
        b.add("iris_v2", v2_body("input", [1, 4], IRIS_ROW))
        rows = iris_rows(64)
        b.add("iris_v2_64", v2_body("input", [64, 4], [v for r in rows for v in r]))
        v1, v2 = "/v1/models/iris:predict", "/v2/models/iris/infer"
        sk_env = {"IRIS_PKL": os.path.join(CACHE, "iris-logreg.pkl")}
        ort_env = {"IRIS_ONNX": IRIS_ONNX}
        rv1 = ("POST", v1, b.data["iris_v1"])
        rv2 = ("POST", v2, b.data["iris_v2"])
        servers = {
            "serve": self.serve("serve", [IRIS_ONNX], rv1),
            "serve-nobatch": self.serve("serve-nobatch", [IRIS_ONNX], rv1,
                                        extra=["--max-batch-size", "1"]),
            "serve-reuseport": self.serve("serve-reuseport", [IRIS_ONNX], rv1,
                                          extra=["--reuse-port"]),
            "ceiling": self.ceiling("ceiling"),
            "ceiling-reuseport": self.ceiling("ceiling-reuseport", ["--reuse-port"]),
            "gunicorn-flask-sklearn": self.gunicorn("gunicorn-flask-sklearn", "py",
                                                    "iris_sklearn:app", sk_env, rv1),
            "gunicorn-flask-onnxruntime": self.gunicorn("gunicorn-flask-onnxruntime", "py",
                                                        "iris_onnx:app", ort_env, rv1),
            "granian-flask-onnxruntime": self.granian("granian-flask-onnxruntime",
                                                      "iris_onnx:app", ort_env, rv1),
            "mlserver": self.mlserver("mlserver", rv2),
        }
        peers = ["gunicorn-flask-sklearn", "gunicorn-flask-onnxruntime",
                 "granian-flask-onnxruntime"]
        cases = []
        if self.args.before:
            # The older build beside this one, in the same rounds: (a) and (c).
            servers["serve-before"] = self.serve("serve-before", [IRIS_ONNX], rv1,
                                                 binary=self.args.before)
            cases += [Case("a-v1", "serve-before", "serve-before", v1, "iris_v1", 64,
                           check_iris_v1),
                      Case("a-v2", "serve-before", "serve-before", v2, "iris_v2", 64,
                           check_iris_v2),
                      Case("c-batch64", "serve-before", "serve-before", v2, "iris_v2_64", 64,
                           check_v2_any)]
        for name in ["serve", "ceiling", *peers, "serve-nobatch", "serve-reuseport",
                     "ceiling-reuseport"]:
            chk = check_anything if name.startswith("ceiling") else check_iris_v1
            cases.append(Case("a-v1", name, name, v1, "iris_v1", 64, chk))
        for name in ["serve", "ceiling", *peers, "mlserver"]:
            chk = check_anything if name == "ceiling" else check_iris_v2
            cases.append(Case("a-v2", name, name, v2, "iris_v2", 64, chk))
        for name in ["serve", "ceiling", *peers, "mlserver"]:
            chk = check_anything if name == "ceiling" else check_v2_any
            cases.append(Case("c-batch64", name, name, v2, "iris_v2_64", 64, chk))
        for conns in (1, 16, 256):
            for name in ["serve", "ceiling"]:
                chk = check_anything if name == "ceiling" else check_iris_v1
                cases.append(Case("e-conns", name, name, v1, "iris_v1", conns, chk))
        self.run_group("iris: scenarios (a), (c), (e), batching and reuse-port", servers, cases)
        # (e) at 64 connections is (a)'s V1 run: copy it in, so the scaling curve is whole.
        sc = self.results["scenarios"]
        for c in sc.get("a-v1", {}).get("cases", []):
            if c["label"] in ("serve", "ceiling"):
                sc.setdefault("e-conns", {"cases": []})["cases"].append(dict(c, note="from a-v1"))

    def scenario_cost(self) -> None:
        """(h) serve's own cost per request against the ceiling's: one worker each, iris at 64
        connections. Per request: CPU of the server's processes, allocations (glibc malloc,
        calloc and realloc, counted with perf uprobes) and system calls; and where the CPU
        goes (perf samples of the worker, grouped by crate). Allocations and samples are taken
        in runs of their own: a uprobe costs about a microsecond per call."""
        b = self.bodies
        b.add("iris_v1", json.dumps({"instances": [IRIS_ROW]}).encode())
        b.add("iris_v2", v2_body("input", [1, 4], IRIS_ROW))
        v1, v2 = "/v1/models/iris:predict", "/v2/models/iris/infer"
        rv1 = ("POST", v1, b.data["iris_v1"])
        servers = {"serve": self.serve("serve-1w", [IRIS_ONNX], rv1, workers=1),
                   "ceiling": self.ceiling("ceiling-1w", workers=1)}
        cases = [("serve V1", "serve", v1, "iris_v1"), ("serve V2", "serve", v2, "iris_v2"),
                 ("ceiling", "ceiling", v1, "iris_v1")]
        if self.args.before:
            servers["before"] = self.serve("serve-before-1w", [IRIS_ONNX], rv1, workers=1,
                                           binary=self.args.before)
            cases += [("before V1", "before", v1, "iris_v1"), ("before V2", "before", v2, "iris_v2")]
        perf = shutil.which("perf")
        probes, why = perf_malloc_probes(perf)
        if why:
            self.anomalies.append(f"cost: allocations not counted: {why}")
            log(f"   !! allocations not counted: {why}")
        runs: dict[str, list[dict]] = {label: [] for label, *_ in cases}
        try:
            for s in servers.values():
                wait_port_free(s.port)
                s.start(self.logdir)
            for r in range(self.rounds):
                order = cases[r % len(cases):] + cases[:r % len(cases)]
                log(f"-- cost round {r + 1}/{self.rounds}")
                for label, name, path, body in order:
                    s = servers[name]
                    body_file = self.bodies.files[body]
                    m = measure(s, path, body_file, 64, self.seconds, self.warmup)
                    one = {"rps": m["rps"], "cpu_us": m["cpu_s"] / max(m["requests"], 1) * 1e6}
                    worker = (children(s.pid) or [s.pid])[0]
                    if perf:
                        one.update(perf_counts(perf, probes, worker, s.port, path, body_file,
                                               min(self.seconds, 3.0)))
                        if r == 0:
                            one["profile"] = perf_profile(perf, worker, s.port, path, body_file,
                                                          min(self.seconds, 3.0))
                    runs[label].append(one)
                    log(f"   {label:10} {one['rps']:>9.0f} req/s  cpu {one['cpu_us']:6.2f} us/req  "
                        f"allocs {one.get('allocs', float('nan')):5.1f}/req  "
                        f"syscalls {one.get('syscalls', float('nan')):4.2f}/req")
        finally:
            for s in servers.values():
                s.stop()
        out = []
        for label, name, path, body in cases:
            rs = runs[label]
            if not rs:
                continue

            def med(k, rs=rs):
                xs = [x[k] for x in rs if x.get(k) is not None]
                return statistics.median(xs) if xs else None
            prof = next((x["profile"] for x in rs if x.get("profile")), None)
            out.append({"label": label, "server": servers[name].describe, "path": path,
                        "rps": med("rps"), "cpu_us": med("cpu_us"), "allocs": med("allocs"),
                        "syscalls": med("syscalls"), "profile": prof, "runs": rs})
        self.results["scenarios"]["h-cost"] = {"cases": out}

    def scenario_titanic(self) -> None:
        """(b) the titanic record route: serve vs the tutorial's gunicorn + Flask + Keras."""
        b = self.bodies
        b.add("titanic", json.dumps({"Age": 22, "Fare": 7.25, "Embarked": "S", "Sex": "male",
                                     "Pclass": 3}).encode())
        ready = ("POST", "/model", b.data["titanic"])
        keras_env = {"TITANIC_KERAS": os.path.join(CACHE, "titanic.keras"),
                     "TF_CPP_MIN_LOG_LEVEL": "2"}
        servers = {
            "serve": self.serve("serve-titanic", [TITANIC_DIR], ready),
            # --timeout 120: the lazy first load of TensorFlow + the model must not look hung.
            "gunicorn-flask-keras": self.gunicorn("gunicorn-flask-keras", "keras",
                                                  "titanic_keras:app", keras_env, ready,
                                                  extra=["--timeout", "120"], ready_timeout=240),
        }
        # The Keras stack answers a few dozen requests a second with 64 connections queued: p50
        # is seconds, so its runs are longer (30 s; 10 s quick), its warm-up is the priming, and
        # each run starts after the backlog that the previous one left has drained.
        slow = 10 if self.quick else 30
        cases = [Case("b-titanic", "serve", "serve", "/model", "titanic", 64, check_titanic),
                 Case("b-titanic", "gunicorn-flask-keras", "gunicorn-flask-keras", "/model",
                      "titanic", 64, check_titanic, seconds=slow, warmup=0, settle=5)]
        self.run_group("titanic: scenario (b)", servers, cases,
                       prime={"gunicorn-flask-keras": 10 if self.quick else 20})

    def heavy_model(self, name: str) -> str:
        return os.path.join(MODELS, f"{name}.onnx")

    def scenario_heavy(self) -> None:
        """(d) PP-OCR cls [N,3,48,192]: inference dominates; dynamic batching on and off."""
        b = self.bodies
        shape = [1, 3, 48, 192]
        b.add("cls", v2_body("x", shape, image_data(shape, 1)))
        # The wheel's file as it is: serve cannot plan it with a symbolic batch (see
        # peers/prepare_cls.py); one request records what serve answers.
        probe = self.serve("serve-cls-original", [self.heavy_model("cls-original")], None)
        wait_port_free(probe.port)
        probe.start(self.logdir)
        try:
            time.sleep(0.3)
            status, data, err = request(probe.port, "POST", "/v2/models/cls-original/infer",
                                        b.data["cls"], timeout=60)
        finally:
            probe.stop()
        self.results["scenarios"]["d-probe"] = {
            "command": probe.describe, "status": status,
            "answer": (data[:400].decode(errors="replace") or err)}
        if status != 200:
            self.anomalies.append(
                f"{probe.describe}: POST /v2/models/cls-original/infer answered {status}: "
                f"{data[:300].decode(errors='replace') or err}")
        ready = ("POST", "/v2/models/cls/infer", b.data["cls"])
        ready1 = ("POST", "/v2/models/cls1/infer", b.data["cls"])
        servers = {
            "serve": self.serve("serve-cls", [self.heavy_model("cls")], ready),
            "serve-nobatch": self.serve("serve-cls-nobatch", [self.heavy_model("cls")], ready,
                                        extra=["--max-batch-size", "1"]),
            "serve-fixed-batch1": self.serve("serve-cls1", [self.heavy_model("cls1")], ready1),
        }
        cases = []
        for n in servers:
            path = ready1[1] if n == "serve-fixed-batch1" else ready[1]
            cases.append(Case("d-heavy", n, n, path, "cls", 16, check_v2_any))
        self.run_group("heavy model (PP-OCR cls): scenario (d)", servers, cases)

    def scenario_cold(self) -> None:
        """(f) time from exec to the first 200, lazy and --preload."""
        reps = 3 if self.quick else 10
        b = self.bodies
        if "iris_v1" not in b.data:
            b.add("iris_v1", json.dumps({"instances": [IRIS_ROW]}).encode())
        shape = [1, 3, 48, 32]
        if "rec" not in b.data:
            b.add("rec", v2_body("x", shape, image_data(shape, 2)))
        out = []
        iris = ("POST", "/v1/models/iris:predict", b.data["iris_v1"])
        rec = ("POST", "/v2/models/rec/infer", b.data["rec"])
        configs = [
            ("serve iris -w 2 (lazy)", lambda: self.serve("cold", [IRIS_ONNX], iris)),
            ("serve iris -w 2 --preload",
             lambda: self.serve("cold", [IRIS_ONNX], iris, extra=["--preload"])),
            ("serve PP-OCR rec 21 MB -w 2 (lazy)",
             lambda: self.serve("cold", [self.heavy_model("rec")], rec)),
            ("serve PP-OCR rec 21 MB -w 2 --preload",
             lambda: self.serve("cold", [self.heavy_model("rec")], rec, extra=["--preload"])),
            ("gunicorn-flask-sklearn iris -w 2 (reference)",
             lambda: self.gunicorn("cold", "py", "iris_sklearn:app",
                                   {"IRIS_PKL": os.path.join(CACHE, "iris-logreg.pkl")}, iris)),
        ]
        log(f"== cold start: scenario (f), {reps} starts each")
        for label, make in configs:
            times = []
            for _ in range(reps):
                s = make()
                s.ready_timeout = 30
                wait_port_free(s.port)
                try:
                    times.append(s.start(self.logdir) * 1000)
                except RuntimeError as e:
                    self.anomalies.append(f"cold start {label}: {e}")
                    log(f"   !! {e}")
                finally:
                    s.stop()
            if times:
                out.append({"label": label, "command": s.describe, "ms_median":
                            statistics.median(times), "ms_min": min(times), "ms_max": max(times),
                            "ms_all": [round(t, 1) for t in times]})
                log(f"   {label:45} median {statistics.median(times):8.1f} ms "
                    f"(min {min(times):.1f}, max {max(times):.1f})")
        self.results["scenarios"]["f-cold"] = {"cases": out}

    def scenario_memory(self) -> None:
        """(g) RSS/PSS of master and each worker, 1 and 4 workers, lazy and --preload."""
        b = self.bodies
        shape = [1, 3, 48, 32]
        if "rec" not in b.data:
            b.add("rec", v2_body("x", shape, image_data(shape, 2)))
        if "iris_v1" not in b.data:
            b.add("iris_v1", json.dumps({"instances": [IRIS_ROW]}).encode())
        rec = ("POST", "/v2/models/rec/infer", b.data["rec"])
        iris = ("POST", "/v1/models/iris:predict", b.data["iris_v1"])
        log("== memory: scenario (g)")
        out = []
        plan = [("rec", self.heavy_model("rec"), rec, "rec", w, p)
                for w in (1, 4) for p in (False, True)]
        plan += [("iris", IRIS_ONNX, iris, "iris_v1", w, p) for w in (2,) for p in (False, True)]
        for model, path, ready, body, workers, preload in plan:
            s = self.serve(f"mem-{model}-{workers}", [path], None, workers=workers,
                           extra=["--preload"] if preload else [])
            wait_port_free(s.port)
            s.start(self.logdir)
            try:
                # Wait for every worker to be up, and send nothing yet: any request, even
                # GET /v2/health/live, builds the app (loads the models) in a lazy worker.
                deadline = time.time() + 60
                while time.time() < deadline and len(children(s.pid)) < workers:
                    time.sleep(0.05)
                time.sleep(1.0)
                idle = self._mem_snapshot(s.pid)
                # Load: bursts of concurrent requests on fresh connections until every worker
                # has answered some (lazy: has loaded the model, its RSS grew), then idle again.
                m, p, body_data = ready
                status, _, err = request(s.port, m, p, body_data, timeout=60)
                if status != 200:
                    self.anomalies.append(f"memory {model} w={workers}: first request {status} {err}")
                grow = 8.0 if model == "rec" else 2.0  # MiB a lazy worker grows by loading
                bursts = 0
                for bursts in range(1, 41):
                    burst(s.port, m, p, body_data, 4 * workers)
                    now = {w["pid"]: w["rss_mib"] for w in self._mem_snapshot(s.pid)["workers"]}
                    if bursts >= 3 and (preload or all(
                            now.get(w["pid"], 0) - w["rss_mib"] >= grow for w in idle["workers"])):
                        break
                wrk(s.port, p, self.bodies.files[body], 4 * workers, 2)
                time.sleep(0.5)
                loaded = self._mem_snapshot(s.pid)
                loaded["bursts"] = bursts
            finally:
                s.stop()
            row = {"model": model, "model_mib": os.path.getsize(path) / 2**20, "workers": workers,
                   "preload": preload, "command": s.describe, "idle": idle, "loaded": loaded}
            out.append(row)
            ws = loaded["workers"]
            log(f"   {model:4} -w {workers} {'--preload' if preload else 'lazy     '}: "
                f"master PSS {loaded['master']['pss_mib']:6.1f}  workers PSS "
                f"{mlist(ws, 'pss_mib')}  total PSS "
                f"{loaded['total_pss_mib']:6.1f} MiB; worker RSS idle "
                f"{mlist(idle['workers'], 'rss_mib')} -> loaded "
                f"{mlist(ws, 'rss_mib')} MiB")
        self.results["scenarios"]["g-memory"] = {"cases": out}

    @staticmethod
    def _mem_snapshot(master: int) -> dict:
        ws = sorted(children(master))

        def one(p):
            return {"pid": p, "rss_mib": rss_kib(p) / 1024, "pss_mib": pss_kib(p) / 1024}
        m = one(master)
        w = [one(p) for p in ws]
        return {"master": m, "workers": w,
                "total_pss_mib": m["pss_mib"] + sum(x["pss_mib"] for x in w),
                "total_rss_mib": m["rss_mib"] + sum(x["rss_mib"] for x in w)}

    # -- machine ------------------------------------------------------------------------------

    def machine(self) -> dict:
        cpu = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])

        def cmd(*a):
            try:
                return subprocess.run(a, capture_output=True, text=True, timeout=30,
                                      cwd=REPO).stdout.strip()
            except OSError:
                return "?"

        def pyver(venv, pkgs):
            code = ("import importlib.metadata as m, json, sys; "
                    f"print(json.dumps({{p: m.version(p) for p in {pkgs!r}}}))")
            try:
                out = subprocess.run([os.path.join(VENVS, venv, "bin", "python"), "-c", code],
                                     capture_output=True, text=True, timeout=60)
                d = json.loads(out.stdout)
                d["python"] = cmd(os.path.join(VENVS, venv, "bin", "python"), "--version")
                return d
            except (OSError, ValueError):
                return {}

        commit = cmd("git", "rev-parse", "HEAD")
        dirty = cmd("git", "status", "--porcelain", "--untracked-files=no", "--", "src", "crates",
                    "Cargo.toml")
        return {
            "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "os": cmd("sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"),
            "load_average": os.getloadavg(),
            "serve_commit": commit, "serve_tree_dirty": bool(dirty),
            "serve_dirty_files": dirty.splitlines()[:20],
            "serve_binary": SERVE,
            "serve_binary_built": dt.datetime.fromtimestamp(
                os.path.getmtime(SERVE), dt.timezone.utc).isoformat(timespec="seconds")
            if os.path.exists(SERVE) else None,
            "serve_version": cmd(SERVE, "--version"),
            "rustc": cmd("rustc", "--version"),
            "wrk": cmd("sh", "-c", "wrk --version 2>&1 | head -1"),
            "peers": {
                "py": pyver("py", ["gunicorn", "flask", "scikit-learn", "numpy",
                                   "onnxruntime", "granian", "matplotlib"]),
                "mlserver": pyver("mlserver", ["mlserver", "mlserver-sklearn", "scikit-learn",
                                               "fastapi", "uvicorn"]),
                "keras": pyver("keras", ["tensorflow-cpu", "keras", "gunicorn", "flask", "numpy"]),
                "torch": pyver("torch", ["torch", "transformers", "onnx", "onnxruntime"]),
            },
        }


def mlist(ws: list[dict], key: str) -> str:
    return ", ".join(f"{w[key]:.1f}" for w in ws)


def _safe(check, data) -> bool:
    try:
        return bool(check(data))
    except Exception:  # noqa: BLE001 - a wrong answer of any shape is a failed check
        return False


# ---------------------------------------------------------------------------------------------
# Report

def case(results, scenario, label, conns=None):
    for c in results["scenarios"].get(scenario, {}).get("cases", []):
        if c["label"] == label and (conns is None or c.get("conns") == conns):
            return c["median"]
    return None


def num(v: float | None, width: int, digits: int) -> str:
    """A figure right-aligned in `width`, or `-` when it was not measured."""
    return f"{v:>{width}.{digits}f}" if v is not None else "-".rjust(width)


def print_tables(results) -> str:
    lines = []
    p = lines.append
    m = results.get("machine", {})
    la = m.get("load_average", [0, 0, 0])
    lb = results.get("load_average_after", [0, 0, 0])
    p(f"run {results.get('run_id')} ({results.get('mode')}: {results['settings']['rounds']} rounds x "
      f"{results['settings']['seconds']} s, medians); {m.get('cpu')}, {m.get('cores')} cores, "
      f"kernel {m.get('kernel')}; load average {la[0]:.2f} before, {lb[0]:.2f} after; "
      f"serve {str(m.get('serve_commit'))[:10]}{' (dirty tree)' if m.get('serve_tree_dirty') else ''}; "
      f"{results.get('duration_s', 0):.0f} s in all")
    titles = {
        "a-v1": "(a) iris, batch 1, V1 JSON (/v1/models/iris:predict), 64 connections",
        "a-v2": "(a) iris, batch 1, V2 JSON (/v2/models/iris/infer), 64 connections",
        "c-batch64": "(c) iris, 64 rows per request, V2 JSON, 64 connections",
        "b-titanic": "(b) titanic POST /model, one record, 64 connections",
        "d-heavy": "(d) PP-OCR cls [1,3,48,192] FP32 V2 JSON (177 kB), 16 connections",
        "e-conns": "(e) connection scaling, iris V1 batch 1",
    }
    for key, title in titles.items():
        sc = results["scenarios"].get(key)
        if not sc:
            continue
        p("")
        p(title)
        p(f"{'stack':30} {'conns':>5} {'req/s':>10} {'x serve':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99.9 ms':>9} {'p99 x serve':>11} {'errors':>7} {'peak RSS MiB':>12} {'PSS MiB':>8} "
          f"{'CPU s':>6} {'CPU us/req':>10}")
        cases = sorted(sc["cases"], key=lambda c: (c["conns"], c["label"] != "serve",
                                                   c["label"]))
        for c in cases:
            m = c["median"]
            ref = case(results, key, "serve", c["conns"]) or m
            p(f"{c['label']:30} {c['conns']:>5} {m['rps']:>10.0f} {m['rps'] / ref['rps']:>8.3f} "
              f"{m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['p999_ms']:>9.2f} "
              f"{m['p99_ms'] / ref['p99_ms'] if ref['p99_ms'] else 0:>11.2f} "
              f"{m['errors_total']:>7} {m['peak_rss_mib']:>12.1f} {m['pss_mib']:>8.1f} "
              f"{m['cpu_s']:>6.1f} {m['cpu_ms_per_1k_req']:>10.1f}")
    probe = results["scenarios"].get("d-probe")
    if probe:
        p("")
        p(f"(d) the wheel's cls file unmodified: {probe['command']}: answered {probe['status']}"
          f"{': ' + probe['answer'][:200] if probe['status'] != 200 else ''}")
    cold = results["scenarios"].get("f-cold")
    if cold:
        p("")
        p("(f) cold start: exec to the first 200 (ms)")
        for c in cold["cases"]:
            p(f"{c['label']:48} median {c['ms_median']:8.1f}  min {c['ms_min']:8.1f}  "
              f"max {c['ms_max']:8.1f}")
    mem = results["scenarios"].get("g-memory")
    if mem:
        p("")
        p("(g) memory after serving (MiB); worker RSS before the first request in brackets")
        p(f"{'model':6} {'workers':>7} {'mode':9} {'master PSS':>10} {'worker PSS each':>22} "
          f"{'total PSS':>9} {'worker RSS each':>22}")
        for c in mem["cases"]:
            ld = c["loaded"]
            p(f"{c['model']:6} {c['workers']:>7} {'preload' if c['preload'] else 'lazy':9} "
              f"{ld['master']['pss_mib']:>10.1f} "
              f"{mlist(ld['workers'], 'pss_mib'):>22} "
              f"{ld['total_pss_mib']:>9.1f} "
              f"{mlist(ld['workers'], 'rss_mib'):>22} "
              f"[{mlist(c['idle']['workers'], 'rss_mib')}]")
    cost = results["scenarios"].get("h-cost")
    if cost:
        p("")
        p("(h) cost per request, one worker, iris at 64 connections (allocations: glibc malloc, "
          "calloc, realloc; profile: % of the worker's CPU samples)")
        p(f"{'case':10} {'req/s':>9} {'CPU us/req':>10} {'allocs/req':>10} {'syscalls/req':>12}  "
          f"profile")
        for c in cost["cases"]:
            prof = ", ".join(f"{k} {v:.0f}" for k, v in (c.get("profile") or {}).items() if v >= 1)
            p(f"{c['label']:10} {num(c['rps'], 9, 0)} {num(c['cpu_us'], 10, 2)} "
              f"{num(c['allocs'], 10, 1)} {num(c['syscalls'], 12, 2)}  {prof}")
    text = "\n".join(lines)
    print(text)
    return text


def targets(results) -> list[dict]:
    out = []

    def add(name, value, goal, met, detail):
        out.append({"target": name, "value": value, "goal": goal, "met": met, "detail": detail})

    for sc in ("a-v1", "a-v2"):
        s, c = case(results, sc, "serve"), case(results, sc, "ceiling")
        if s and c:
            r = s["rps"] / c["rps"]
            add(f"{sc}: req/s vs ceiling", round(r, 3), ">= 0.85", r >= 0.85,
                f"serve {s['rps']:.0f}/s, ceiling {c['rps']:.0f}/s")
            r = s["p99_ms"] / c["p99_ms"]
            add(f"{sc}: p99 vs ceiling", round(r, 2), "<= 1.5", r <= 1.5,
                f"serve {s['p99_ms']:.2f} ms, ceiling {c['p99_ms']:.2f} ms")
        for peer, goal in (("gunicorn-flask-sklearn", 30), ("granian-flask-onnxruntime", 10)):
            g = case(results, sc, peer)
            if s and g and g["rps"]:
                r = s["rps"] / g["rps"]
                add(f"{sc}: req/s vs {peer}", round(r, 1), f">= {goal}x", r >= goal,
                    f"serve {s['rps']:.0f}/s, {peer} {g['rps']:.0f}/s")
    s, k = case(results, "b-titanic", "serve"), case(results, "b-titanic", "gunicorn-flask-keras")
    if s and k and k["rps"]:
        r = s["rps"] / k["rps"]
        add("b: req/s vs Keras stack", round(r, 0), ">= 1000x", r >= 1000,
            f"serve {s['rps']:.0f}/s, Keras {k['rps']:.1f}/s")
        for what in ("peak_rss_mib", "pss_mib"):
            r = k[what] / s[what] if s[what] else 0
            add(f"b: memory ({what}) Keras / serve", round(r, 1), ">= 50x", r >= 50,
                f"serve {s[what]:.1f} MiB, Keras {k[what]:.1f} MiB")
    on, off = case(results, "a-v1", "serve"), case(results, "a-v1", "serve-nobatch")
    if on and off:
        r = on["rps"] / off["rps"]
        add("batching, iris 64 conns: req/s on / off", round(r, 2), ">= 1.5", r >= 1.5,
            f"on {on['rps']:.0f}/s, off {off['rps']:.0f}/s")
        add("batching, iris 64 conns: p99 on <= off", round(on["p99_ms"], 2),
            f"<= {off['p99_ms']:.2f} ms", on["p99_ms"] <= off["p99_ms"],
            f"on {on['p99_ms']:.2f} ms, off {off['p99_ms']:.2f} ms")
    on, off = case(results, "d-heavy", "serve"), case(results, "d-heavy", "serve-nobatch")
    if on and off:
        r = on["rps"] / off["rps"]
        add("batching, heavy model: req/s on / off", round(r, 3), ">= 1.0", r >= 1.0,
            f"on {on['rps']:.1f}/s, off {off['rps']:.1f}/s (gain {100 * (r - 1):+.1f}%)")
    for c in results["scenarios"].get("f-cold", {}).get("cases", []):
        if c["label"].startswith("serve iris"):
            add(f"f: cold start, {c['label']}", round(c["ms_median"], 1), "< 100 ms",
                c["ms_median"] < 100, f"median of {len(c['ms_all'])}")
    mem = results["scenarios"].get("g-memory", {}).get("cases", [])
    for c in mem:
        if c["model"] == "iris":
            idle = max(w["rss_mib"] for w in c["idle"]["workers"])
            loaded = max(w["rss_mib"] for w in c["loaded"]["workers"])
            mode = "preload" if c["preload"] else "lazy"
            add(f"g: idle worker RSS, iris {mode} (before / after requests)",
                round(loaded, 1), "< 15 MiB", loaded < 15,
                f"largest worker RSS {idle:.1f} MiB before the first request, {loaded:.1f} MiB "
                f"idle after serving")
    for preload in (True, False):
        one = [c for c in mem if c["model"] == "rec" and c["workers"] == 1 and c["preload"] == preload]
        four = [c for c in mem if c["model"] == "rec" and c["workers"] == 4 and c["preload"] == preload]
        if one and four:
            d = (four[0]["loaded"]["total_pss_mib"] - one[0]["loaded"]["total_pss_mib"]) / 3
            mode = "--preload" if preload else "lazy"
            add(f"g: PSS per worker beyond the first, rec 21 MB, {mode}", round(d, 1),
                "<= 8 MiB" if preload else "(no target without --preload)",
                d <= 8 if preload else None,
                f"total PSS 1 worker {one[0]['loaded']['total_pss_mib']:.1f} MiB, "
                f"4 workers {four[0]['loaded']['total_pss_mib']:.1f} MiB")
    return out


def print_targets(ts) -> str:
    lines = ["", "Targets (issue 4; engines: issue 20)"]
    for t in ts:
        verdict = "info" if t["met"] is None else ("MET   " if t["met"] else "MISSED")
        lines.append(f"  {verdict:6} {t['target']:58} {t['value']!s:>8} (goal {t['goal']}): "
                     f"{t['detail']}")
    text = "\n".join(lines)
    print(text)
    return text


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s runs (iteration)")
    ap.add_argument("--only", default="iris,titanic,heavy,cold,memory,cost,balance,grpc",
                    help="comma-separated groups: iris (a, c, e, batching, reuse-port), "
                         "titanic (b), heavy (d), cold (f), memory (g), cost (h), balance (i), "
                         "grpc (j); "
                         "engines (tract, serve's onnxruntime and Python's on the full-size "
                         "models: not in the default, its setup is a 5 GB torch venv)")
    ap.add_argument("--starts", type=int,
                    help="(i) balance: fresh starts per configuration (default 5, quick 2)")
    ap.add_argument("--before", metavar="SERVE_BINARY",
                    help="an older serve binary to measure beside this one, in the same rounds: "
                         "(a) V1 and V2, (c), (h) and (i)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    ap.add_argument("--seconds", type=float, help="seconds per measured run (default 10, quick 3)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up before each run (2, quick 1)")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--wait-load", type=float, metavar="LOAD",
                    help="first wait until the 1-minute load average is below LOAD")
    ap.add_argument("--wait-max", type=float, default=1800, metavar="SECONDS",
                    help="give up waiting after this long and run anyway (default 1800)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    for p in (SERVE, CEILING, shutil.which("wrk")):
        if not p or not os.path.exists(p):
            print(f"missing {p}: run bench/setup.sh first", file=sys.stderr)
            return 1
    waited = 0.0
    if args.wait_load:
        t_wait = time.time()
        while os.getloadavg()[0] >= args.wait_load and time.time() - t_wait < args.wait_max:
            log(f"load average {os.getloadavg()[0]:.2f} >= {args.wait_load}: waiting")
            time.sleep(30)
        waited = time.time() - t_wait
    r = Runner(args)
    t0 = time.time()
    results = r.results
    results.update(run_id=r.run_id, mode="quick" if r.quick else "full",
                   started=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   settings={"rounds": r.rounds, "seconds": r.seconds, "warmup": r.warmup,
                             "workers": WORKERS, "load_generator": "wrk, -t 2 (-t 1 for 1 "
                             "connection), keep-alive, POST via bench/post.lua, --timeout 30s"},
                   machine=r.machine(), waited_for_load_s=round(waited),
                   wait_load=args.wait_load)
    log(f"run {r.run_id}: {r.rounds} rounds x {r.seconds}s (+{r.warmup}s warm-up); "
        f"load average {results['machine']['load_average']}")
    import balance
    import engines
    import grpc_bench
    import tls_bench
    groups = {"iris": r.scenario_iris, "titanic": r.scenario_titanic, "heavy": r.scenario_heavy,
              "cold": r.scenario_cold, "memory": r.scenario_memory, "cost": r.scenario_cost,
              "balance": lambda: balance.scenario(r), "engines": lambda: engines.scenario(r),
              "grpc": lambda: grpc_bench.scenario(r), "tls": lambda: tls_bench.scenario(r)}
    for g in args.only.split(","):
        try:
            groups[g.strip()]()
        except Exception as e:  # noqa: BLE001 - report, stop that group's servers, go on
            r.anomalies.append(f"group {g} failed: {type(e).__name__}: {e}")
            log(f"!! group {g} failed: {type(e).__name__}: {e}")
            stop_all()
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["duration_s"] = round(time.time() - t0, 1)
    results["load_average_after"] = os.getloadavg()
    results["anomalies"] = r.anomalies
    results["targets"] = targets(results) + engines.targets(results)
    table = print_tables(results)
    table += balance.table(results)
    table += tls_bench.table(results)
    table += engines.table(results)
    table += print_targets(results["targets"])
    if r.anomalies:
        print("\nAnomalies (errors, wrong answers, crashes):")
        for a in r.anomalies:
            print("  - " + a)
    results["table"] = table
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{r.run_id}.json")
    for p in (path, os.path.join(RESULTS, "latest.json")):
        with open(p, "w") as f:
            json.dump(results, f, indent=1)
    log(f"wrote {os.path.relpath(path, REPO)} and bench/results/latest.json "
        f"({results['duration_s']:.0f}s in all)")
    if not args.no_chart:
        py = os.path.join(VENVS, "py", "bin", "python")
        out = subprocess.run([py, os.path.join(HERE, "chart.py"), path,
                              os.path.join(RESULTS, "latest.svg")], capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
