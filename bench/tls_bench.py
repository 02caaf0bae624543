"""Scenario (k) of bench/run.py: TLS against cleartext on the same model.

    python3 bench/run.py --only tls [--quick] [--rounds N]

Two `serve -w 2` on iris, one in clear and one with `--certfile`/`--keyfile` (an ECDSA P-256
certificate made with openssl for the run), each asked KServe V2 with a JSON body by wrk with
64 connections two ways, interleaved round by round: keep-alive (TLS's cost is then the
record layer: AES-GCM and framing) and a new connection per request (`Connection: close`:
every request pays a TCP and a TLS handshake). For each: requests per second, p99, and the
server's CPU per request (its processes' CPU time over the run ÷ requests; wrk's own TLS
shares the 2 cores, so the comparison that means something is the server's CPU). The target
(issue 25): keep-alive TLS costs the server at most 1.25× the CPU per request of clear.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile

import run
from run import IRIS_ONNX, Sampler, Server, log

CONNS = 64
KINDS = [("clear", "keep-alive"), ("tls", "keep-alive"), ("clear", "new connection"),
         ("tls", "new connection")]


def certificate(tmp: str) -> tuple[str, str]:
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)
    return cert, key


def wrk(url: str, body_file: str, seconds: float, close: bool) -> dict:
    cmd = ["wrk", "-t", "2", "-c", str(CONNS), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "30s", "-s", run.LUA]
    if close:
        cmd += ["-H", "Connection: close"]
    return run.wrk_json(cmd + [url], seconds, body_file)


def one(r, server: Server, url: str, close: bool) -> dict:
    file = r.bodies.files["iris_v2"]
    wrk(url, file, r.warmup, close)
    with Sampler(server.pid) as s:
        w = wrk(url, file, r.seconds, close)
    secs = w["duration_us"] / 1e6
    e = w["errors"]
    return {"rps": w["requests"] / secs if secs else 0.0,
            "p99_ms": w["latency_us"]["p99"] / 1000,
            "cpu_us": s.cpu_seconds() / max(w["requests"], 1) * 1e6,
            "errors": e["status"] + e["connect"] + e["read"] + e["write"] + e["timeout"]}


def scenario(r) -> None:
    b = r.bodies
    b.add("iris_v2", run.v2_body("input", [1, 4], run.IRIS_ROW))
    ready = ("POST", "/v2/models/iris/infer", b.data["iris_v2"])
    tmp = tempfile.mkdtemp(prefix="serve-bench-tls-")
    cert, key = certificate(tmp)
    clear = r.serve("serve-clear", [IRIS_ONNX], ready)
    # The TLS server is asked whether it is ready on a --metrics-bind address, in clear.
    port, admin = r.port(), r.port()
    argv = [run.SERVE, "-w", str(run.WORKERS), "-b", f"127.0.0.1:{port}", "--metrics-bind",
            f"127.0.0.1:{admin}", "--certfile", cert, "--keyfile", key, IRIS_ONNX]
    tls = Server("serve-tls", argv, admin, ready=("GET", "/v2/health/ready", None),
                 describe="serve " + " ".join(argv[1:]).replace(run.REPO + "/", ""))
    urls = {"clear": f"http://127.0.0.1:{clear.port}/v2/models/iris/infer",
            "tls": f"https://127.0.0.1:{port}/v2/models/iris/infer"}
    servers = {"clear": clear, "tls": tls}
    runs: dict = {k: [] for k in KINDS}
    try:
        for s in servers.values():
            run.wait_port_free(s.port)
            s.start(r.logdir)
        for rnd in range(r.rounds):
            log(f"-- tls round {rnd + 1}/{r.rounds}")
            order = KINDS[rnd % len(KINDS):] + KINDS[:rnd % len(KINDS)]
            for scheme, how in order:
                m = one(r, servers[scheme], urls[scheme], how == "new connection")
                runs[(scheme, how)].append(m)
                log(f"   {scheme:5} {how:15} {m['rps']:>8.0f} req/s  p99 {m['p99_ms']:6.2f} ms"
                    f"  cpu {m['cpu_us']:7.1f} us/req  errors {m['errors']}")
    finally:
        for s in servers.values():
            s.stop()
    out = []
    for (scheme, how), rs in runs.items():
        if not rs:
            continue
        out.append({"scheme": scheme, "connections": how,
                    "rps": statistics.median(x["rps"] for x in rs),
                    "p99_ms": statistics.median(x["p99_ms"] for x in rs),
                    "cpu_us": statistics.median(x["cpu_us"] for x in rs),
                    "errors": sum(x["errors"] for x in rs), "runs": rs,
                    "server": servers[scheme].describe})
    ratios = {}
    for how in ("keep-alive", "new connection"):
        c = next((x for x in out if x["scheme"] == "clear" and x["connections"] == how), None)
        t = next((x for x in out if x["scheme"] == "tls" and x["connections"] == how), None)
        if c and t and c["cpu_us"]:
            ratios[how] = round(t["cpu_us"] / c["cpu_us"], 2)
    r.results["scenarios"]["k-tls"] = {"cases": out, "cpu_ratio_tls_to_clear": ratios}


def table(results: dict) -> str:
    k = results.get("scenarios", {}).get("k-tls")
    if not k:
        return ""
    lines = ["", "(k) TLS against clear, iris V2 JSON, 64 connections, serve -w 2",
             f"{'':6} {'connections':15} {'req/s':>9} {'p99 ms':>8} {'CPU us/req':>11} {'errors':>7}"]
    for c in k["cases"]:
        lines.append(f"{c['scheme']:6} {c['connections']:15} {c['rps']:>9.0f} {c['p99_ms']:>8.2f} "
                     f"{c['cpu_us']:>11.1f} {c['errors']:>7}")
    for how, ratio in k["cpu_ratio_tls_to_clear"].items():
        lines.append(f"server CPU per request, TLS ÷ clear, {how}: {ratio}"
                     + (" (target <= 1.25)" if how == "keep-alive" else ""))
    text = "\n".join(lines) + "\n"
    print(text)
    return text
