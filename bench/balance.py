"""Scenario (i) of bench/run.py: how connections spread over the workers.

    python3 bench/run.py --only balance [--starts 5] [--before /path/to/older/serve] [--quick]

Every run is a fresh start of its server (the spread of keep-alive connections is decided when
they connect, so a server that has already served says nothing of the next start), loaded by
wrk for a fixed time without warm-up:

- candidates: the ceiling (bare hyper, no model) with each way of taking connections that
  `ceiling --accept` offers, at -w 2 and -w 4: 64 keep-alive connections, 64 connections that
  each make one request (`Connection: close`: churn), and 2 keep-alive connections on -w 2;
- serve and the ceiling as the bench runs them (`--accept balanced`, serve's own acceptor),
  and with `--before BIN`, an older serve against the ceiling's `--accept shared` (what both
  did before issue 18), on iris V1, keep-alive and churn, at -w 2 and -w 4, the stacks
  interleaved start by start; serve ÷ ceiling per start shows whether throughput is bimodal.

The spread of a run is read while wrk's connections are open: connections per worker (serve's
`/status` on a `--metrics-bind` listener, whose connections are not counted; the ceiling's
`GET /workers`, less the reading's own connection, which the answer names; each reading on a
connection of its own, closed before wrk connects), and requests per worker over the run.
(Accept counts would not do: wrk opens a connection or two more than `-c` says.) A spread is
the largest distance of a worker from its fair share, in percent of that share.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import threading
import time

import run
from run import LUA, IRIS_ONNX, Server, log

V1 = "/v1/models/iris:predict"
V1_BODY = json.dumps({"instances": [run.IRIS_ROW]}).encode()
MODES = ["balanced", "shared", "one", "exclusive", "reuseport"]


def wrk(port: int, conns: int, seconds: int, churn: bool) -> dict:
    threads = 1 if conns <= 2 else 2
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "30s",
           "-s", LUA, f"http://127.0.0.1:{port}{V1}"]
    if churn:
        cmd[1:1] = ["-H", "Connection: close"]
    return run.wrk_json(cmd, seconds)


def read(port: int, path: str) -> dict:
    """A server's per-worker figures, on a connection of their own (closed after: a reading
    must not be a connection the workers share while wrk's arrive)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def figures(reading: dict, serve: bool) -> dict:
    """{"connections": [...] or None, "accepted": [...] or None, "requests": [...]}, in worker
    order."""
    if serve:
        ws = sorted(reading["workers"], key=lambda w: w["pid"])
        conns = [w["connections"] for w in ws] if all("connections" in w for w in ws) else None
        return {"connections": conns, "accepted": None, "requests": [w["requests"] for w in ws]}
    # The reading's own connection is open in the thread that answers: not wrk's.
    open_ = [n - (i == reading["me"]) for i, n in enumerate(reading["open"])]
    return {"connections": open_, "accepted": reading["accepted"],
            "requests": reading["requests"]}


def spread(counts: list[int] | None) -> float | None:
    """The largest distance of a worker from the fair share, in percent of it."""
    if not counts or sum(counts) == 0:
        return None
    share = sum(counts) / len(counts)
    return round(max(abs(c - share) for c in counts) / share * 100, 1)


def one_run(r, server: Server, serve: bool, conns: int, seconds: int, churn: bool) -> dict:
    """Starts `server`, loads it, reads its spread mid-run and at the end, stops it."""
    run.wait_port_free(server.port)
    server.start(r.logdir)
    try:
        port, path = (server.admin_port, "/status") if serve else (server.port, "/workers")
        before = figures(read(port, path), serve)
        time.sleep(0.2)  # the reading's connection is closed on the server's side too
        mid: dict = {}

        def snapshot():
            time.sleep(seconds * 0.6)
            mid.update(figures(read(port, path), serve))
        t = threading.Thread(target=snapshot)
        t.start()
        w = wrk(server.port, conns, seconds, churn)
        t.join()
        after = figures(read(port, path), serve)
    finally:
        server.stop()
    e, lat = w["errors"], w["latency_us"]
    secs = w["duration_us"] / 1e6
    requests = [a - b for a, b in zip(after["requests"], before["requests"])]
    accepted = (None if after["accepted"] is None else
                [a - b for a, b in zip(after["accepted"], before["accepted"])])
    # Keep-alive: the connections open in each worker mid-run (the older serve's /status has
    # no connections: its requests, then); churn: the requests each worker answered.
    placed = requests if churn else (mid.get("connections") or requests)
    return {
        "rps": w["requests"] / secs if secs else 0.0, "p99_ms": lat["p99"] / 1000,
        "errors": e["status"] + e["connect"] + e["read"] + e["write"] + e["timeout"],
        "connections_mid": mid.get("connections"), "accepted": accepted, "requests": requests,
        "spread_pct": spread(placed), "placed": placed,
    }


def summary(runs: list[dict]) -> dict:
    rps = [x["rps"] for x in runs]
    med = statistics.median(rps)
    spreads = [x["spread_pct"] for x in runs if x["spread_pct"] is not None]
    return {
        "starts": len(runs), "rps_median": med, "rps_all": [round(x) for x in rps],
        "rps_within_10pct_of_median": sum(abs(x - med) <= 0.1 * med for x in rps),
        "p99_ms_median": statistics.median(x["p99_ms"] for x in runs),
        "spread_pct_median": statistics.median(spreads) if spreads else None,
        "spread_pct_worst": max(spreads) if spreads else None,
        "errors": sum(x["errors"] for x in runs), "placed": [x["placed"] for x in runs],
    }


def ceiling(r, mode: str, workers: int) -> Server:
    return r.ceiling(f"ceiling-{mode}-w{workers}", ["--accept", mode], workers=workers)


def serve(r, name: str, binary: str, workers: int) -> Server:
    port, admin = r.port(), r.port()
    argv = [binary, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--metrics-bind",
            f"127.0.0.1:{admin}", IRIS_ONNX]
    s = Server(name, argv, port, ready=("POST", V1, V1_BODY),
               describe="serve " + " ".join(argv[1:]).replace(run.REPO + "/", ""))
    s.admin_port = admin
    return s


def scenario(r) -> None:
    starts = r.args.starts or (2 if r.quick else 5)
    seconds = 3 if r.quick else 5
    out: dict = {"starts": starts, "seconds": seconds, "candidates": [], "stacks": []}
    r.results["scenarios"]["i-balance"] = out

    log(f"== (i) balance: candidates, {starts} fresh starts each, {seconds}s runs")
    for workers in (2, 4):
        for load, conns, churn in (("keep-alive", 64, False), ("churn", 64, True),
                                   ("2 connections", 2, False)):
            if conns == 2 and workers != 2:
                continue
            for mode in MODES:
                runs = [one_run(r, ceiling(r, mode, workers), False, conns, seconds, churn)
                        for _ in range(starts)]
                s = summary(runs)
                if conns == 2:
                    s["one_each"] = sum(x["connections_mid"] == [1, 1] for x in runs)
                out["candidates"].append(dict(s, mode=mode, workers=workers, load=load,
                                              runs=runs))
                log(f"   ceiling --accept {mode:9} -w {workers} {load:14} "
                    f"{s['rps_median']:>9.0f} req/s  p99 {s['p99_ms_median']:6.2f} ms  "
                    f"spread median {s['spread_pct_median']}% worst {s['spread_pct_worst']}%  "
                    f"placed {s['placed']}")

    stacks = [("serve", lambda w: serve(r, f"serve-w{w}", run.SERVE, w), True),
              ("ceiling", lambda w: ceiling(r, "balanced", w), False)]
    if r.args.before:
        stacks += [("serve before", lambda w: serve(r, f"serve-before-w{w}", r.args.before, w),
                    True),
                   ("ceiling before (shared)", lambda w: ceiling(r, "shared", w), False)]
    log(f"== (i) balance: serve and the ceiling, {starts} fresh starts, interleaved")
    for workers in (2, 4):
        for load, churn in (("keep-alive", False), ("churn", True)):
            runs: dict[str, list[dict]] = {name: [] for name, *_ in stacks}
            for _ in range(starts):
                for name, make, is_serve in stacks:
                    runs[name].append(one_run(r, make(workers), is_serve, 64, seconds, churn))
            for name, *_ in stacks:
                s = summary(runs[name])
                out["stacks"].append(dict(s, stack=name, workers=workers, load=load,
                                          runs=runs[name]))
                log(f"   {name:24} -w {workers} {load:10} {s['rps_median']:>9.0f} req/s  "
                    f"p99 {s['p99_ms_median']:6.2f} ms  spread median "
                    f"{s['spread_pct_median']}% worst {s['spread_pct_worst']}%  "
                    f"rps {s['rps_all']}")
            for a, b in (("serve", "ceiling"), ("serve before", "ceiling before (shared)")):
                if a in runs and b in runs:
                    ratios = [x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b]) if y["rps"]]
                    med = statistics.median(ratios)
                    out.setdefault("ratios", []).append({
                        "serve": a, "ceiling": b, "workers": workers, "load": load,
                        "per_start": [round(x, 3) for x in ratios], "median": round(med, 3),
                        "within_10pct_of_median": sum(abs(x - med) <= 0.1 * med
                                                      for x in ratios)})
                    log(f"   {a} / {b}: {[round(x, 2) for x in ratios]}")


def table(results: dict) -> str:
    sc = results["scenarios"].get("i-balance")
    if not sc:
        return ""
    lines = [f"\n(i) balance: {sc['starts']} fresh starts per row, {sc['seconds']} s each; spread: "
             "largest distance of a worker from its fair share (connections mid-run for "
             "keep-alive, requests for churn), median and worst over the starts",
             "", "| accept | -w | load | req/s (median) | p99 ms | spread median % | "
             "spread worst % | starts within 10% of median req/s |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in sc["candidates"]:
        extra = f" ({c['one_each']}/{c['starts']} one each)" if "one_each" in c else ""
        lines.append(f"| ceiling {c['mode']} | {c['workers']} | {c['load']}{extra} | "
                     f"{c['rps_median']:,.0f} | {c['p99_ms_median']:.2f} | "
                     f"{c['spread_pct_median']} | {c['spread_pct_worst']} | "
                     f"{c['rps_within_10pct_of_median']}/{c['starts']} |")
    lines += ["", "| stack | -w | load | req/s (median) | p99 ms | spread median % | "
              "spread worst % | starts within 10% of median req/s |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in sc["stacks"]:
        lines.append(f"| {c['stack']} | {c['workers']} | {c['load']} | {c['rps_median']:,.0f} | "
                     f"{c['p99_ms_median']:.2f} | {c['spread_pct_median']} | "
                     f"{c['spread_pct_worst']} | {c['rps_within_10pct_of_median']}/{c['starts']} |")
    for x in sc.get("ratios", []):
        lines.append(f"\n{x['serve']} ÷ {x['ceiling']}, -w {x['workers']} {x['load']}: per start "
                     f"{x['per_start']}, median {x['median']}, "
                     f"{x['within_10pct_of_median']}/{len(x['per_start'])} within 10% of it")
    text = "\n".join(lines) + "\n"
    print(text)
    return text
