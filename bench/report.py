#!/usr/bin/env python3
"""Prints the markdown tables of a results file, for bench/README.md and the top README.

    python3 bench/report.py bench/results/latest.json            # every table and the targets
    python3 bench/report.py bench/results/latest.json --summary  # the short table of README.md

It only formats what run.py measured: no figure is computed here except ratios.
"""

import argparse
import json
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")

NAMES = {
    "serve": "serve",
    "ceiling": "bare hyper (ceiling)",
    "ceiling-reuseport": "ceiling, SO_REUSEPORT per thread",
    "gunicorn-flask-sklearn": "gunicorn + Flask + scikit-learn",
    "gunicorn-flask-onnxruntime": "gunicorn + Flask + onnxruntime",
    "granian-flask-onnxruntime": "granian + Flask + onnxruntime",
    "mlserver": "MLServer 1.7",
    "serve-nobatch": "serve, batching off",
    "serve-reuseport": "serve --reuse-port",
    "serve-fixed-batch1": "serve, model pinned to [1,3,48,192]",
    "gunicorn-flask-keras": "gunicorn + Flask + Keras (tutorial)",
}

TITLES = {
    "a-v1": "(a) iris, 1 row, V1 JSON, 64 connections",
    "a-v2": "(a) iris, 1 row, V2 JSON, 64 connections",
    "c-batch64": "(c) iris, 64 rows per request (V2 JSON), 64 connections",
    "b-titanic": "(b) titanic POST /model, 64 connections",
    "d-heavy": "(d) PP-OCR cls, [1,3,48,192] FP32 (177 kB JSON), 16 connections",
}


def num(x: float, digits: int = 2) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def ratio(x: float) -> str:
    if x >= 10:
        return f"{x:,.0f}"
    return f"{x:.2f}"


def cases_table(scenario: dict) -> list[str]:
    cases = scenario["cases"]
    serve = next(c for c in cases if c["label"] == "serve")["median"]["rps"]
    out = [
        "| stack | req/s | serve ÷ this | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MiB | CPU µs/req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        m = c["median"]
        out.append(
            f"| {NAMES.get(c['label'], c['label'])} | {num(m['rps'])} | {ratio(serve / m['rps'])} "
            f"| {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['p999_ms']:.2f} | {m['errors_total']} "
            f"| {m['peak_rss_mib']:.0f} | {num(m['cpu_ms_per_1k_req'], 1)} |"
        )
    return out


def conns_table(scenario: dict) -> list[str]:
    by = {}
    for c in scenario["cases"]:
        by.setdefault(c["conns"], {})[c["label"]] = c["median"]
    out = [
        "| connections | serve req/s | ceiling req/s | serve ÷ ceiling | serve p99 ms | ceiling p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sorted(by):
        s, c = by[n]["serve"], by[n]["ceiling"]
        out.append(
            f"| {n} | {num(s['rps'])} | {num(c['rps'])} | {s['rps'] / c['rps']:.2f} "
            f"| {s['p99_ms']:.2f} | {c['p99_ms']:.2f} |"
        )
    return out


def cold_table(scenario: dict) -> list[str]:
    out = ["| | median ms | min | max |", "| --- | ---: | ---: | ---: |"]
    for c in scenario["cases"]:
        out.append(
            f"| {c['label']} | {c['ms_median']:.1f} | {c['ms_min']:.1f} | {c['ms_max']:.1f} |"
        )
    return out


def memory_table(scenario: dict) -> list[str]:
    out = [
        "| model | workers | mode | master PSS | workers PSS | total PSS | worker RSS |",
        "| --- | ---: | --- | ---: | --- | ---: | --- |",
    ]
    for r in scenario["cases"]:
        loaded, idle = r["loaded"], r["idle"]
        pss = ", ".join(f"{w['pss_mib']:.1f}" for w in loaded["workers"])
        before = ", ".join(f"{w['rss_mib']:.1f}" for w in idle["workers"])
        after = ", ".join(f"{w['rss_mib']:.1f}" for w in loaded["workers"])
        size = (
            f"{r['model_mib']:.1f} MiB" if r["model_mib"] >= 1 else f"{r['model_mib'] * 1024:.0f} KiB"
        )
        out.append(
            f"| {r['model']} ({size}) | {r['workers']} | {'--preload' if r['preload'] else 'lazy'} "
            f"| {loaded['master']['pss_mib']:.1f} | {pss} | {loaded['total_pss_mib']:.1f} "
            f"| {before} → {after} |"
        )
    return out


def engines(results: dict) -> list[str]:
    """The engines scenario (bench/engines.py): the model call, end to end, memory, batching
    and idleness, each a table."""
    sc = results["scenarios"]["engines"]
    lib = sc["onnxruntime"]
    out = [
        f"**The model call**: milliseconds per request, serve -w 1 (`serve_inference_duration_"
        f"seconds`) and Python's `session.run`, one thread each; onnxruntime {lib['version']} "
        f"for both; median of {sc['rounds']} rounds sharing {sc['seconds_per_engine']:g} s per "
        "engine",
        "",
        "| model | tract | serve, onnxruntime | Python onnxruntime | serve ÷ Python "
        "| tract ÷ Python | requests (tract, serve, Python) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def ms(fig: dict) -> str:
        if "ms_per_request" not in fig:
            return "fails" if "error" in fig else "-"
        calls = fig.get("calls_per_request", 1)
        return f"{num(fig['ms_per_request'])}" + (f" ({calls:.0f} calls)" if calls > 1.01 else "")

    errors = []
    for row in sc["calls"]:
        t, o, p = (row.get(e, {}) for e in ("tract", "onnxruntime", "python"))
        serve = f"{o['x_python']:.3f}" if "x_python" in o else "-"
        tract = f"{t['x_python']:.2f}" if "x_python" in t else "-"
        requests = ", ".join(str(x.get("requests", 0)) for x in (t, o, p))
        out.append(f"| {row['about']} | {ms(t)} | {ms(o)} | {ms(p)} | {serve} | {tract} "
                   f"| {requests} |")
        errors += [f"- {row['model']} on {e}: {x['error'][:300]}"
                   for e, x in (("tract", t), ("onnxruntime", o), ("python", p)) if "error" in x]
    if errors:
        out += [""] + errors
    e2e = results["scenarios"].get("engines-e2e", {}).get("cases", [])
    if e2e:
        out += [
            "",
            "**End to end**: serve -w 2 --engine onnxruntime against gunicorn -w 2 + Flask + "
            "onnxruntime (sync workers), KServe V2 binary tensors both ways",
            "",
            "| model | connections | serve req/s | Python req/s | serve ÷ Python | serve p99 ms "
            "| Python p99 ms | serve peak RSS MiB | Python peak RSS MiB | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in e2e:
            if c["label"] != "serve":
                continue
            p = next((x for x in e2e if x["body"] == c["body"] and x["conns"] == c["conns"]
                      and x["label"] != "serve"), None)
            if p is None:
                continue
            s, q = c["median"], p["median"]
            out.append(
                f"| {c['body'].removeprefix('engines-')} | {c['conns']} | {num(s['rps'])} "
                f"| {num(q['rps'])} | {s['rps'] / q['rps']:.2f} | {s['p99_ms']:.1f} "
                f"| {q['p99_ms']:.1f} | {s['peak_rss_mib']:.0f} | {q['peak_rss_mib']:.0f} "
                f"| {s['errors_total']}, {q['errors_total']} |"
            )
    out += [
        "",
        "**A worker's memory** (MiB, -w 1, /proc/PID/status): VmRSS before any request → after "
        "one → after the timed calls; RssAnon and RssFile after one request",
        "",
        "| model | engine | VmRSS | RssAnon | RssFile | threads |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in sc["calls"]:
        for e in ("tract", "onnxruntime"):
            mem = row.get(e, {}).get("memory")
            if not mem:
                continue
            one = mem["one_request"]
            rss = " → ".join(f"{mem[k]['VmRSS'] / 1024:.1f}" for k in
                             ("before", "one_request", "after_calls") if k in mem)
            out.append(
                f"| {row['model']} | {e} | {rss} | {one.get('RssAnon', 0) / 1024:.1f} "
                f"| {one.get('RssFile', 0) / 1024:.1f} | {one.get('threads', '-')} |"
            )
    if sc.get("batching"):
        out += [
            "",
            "**Batching, BERT-style encoder on onnxruntime**: one row of 64 tokens per request, "
            "8 connections, serve -w 1; rows per call from `serve_batch_rows` over the runs",
            "",
            "| serve | rows/s | p99 ms | rows per call | calls by rows | errors |",
            "| --- | ---: | ---: | ---: | --- | ---: |",
        ]
        for b in sc["batching"]:
            hist = ", ".join(f"{k}: {v}" for k, v in b["histogram"].items())
            rpc = f"{b['rows_per_call']:.2f}" if b["rows_per_call"] else "-"
            out.append(f"| {b['label']} | {num(b['rows_per_s'])} | {b['p99_ms']:.1f} | {rpc} "
                       f"| {hist} | {b['errors']} |")
    if sc.get("idle"):
        out += [
            "",
            f"**Idle**: a worker holding an onnxruntime model, CPU ticks (1/{CLK_TCK} s, utime + "
            f"stime of all its threads) from {sc['settle_seconds']:g} s after a request, before "
            f"and after {sc['idle_seconds']:g} s idle",
            "",
            "| model | --model-threads | threads | ticks before | ticks after | delta "
            "| the threads alive throughout: ticks, CPU ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for d in sc["idle"]:
            threads = (f"{d['threads']}" if d["threads"] == d["threads_after"]
                       else f"{d['threads']} → {d['threads_after']}")
            out.append(f"| {d['model']} | {d['model_threads']} | {threads} "
                       f"| {d['ticks_before']} | {d['ticks_after']} | {d['ticks_delta']} "
                       f"| {d['alive_threads_ticks_delta']}, "
                       f"{d['alive_threads_cpu_ms']:.2f} |")
    return out + [""]


def targets_table(results: dict) -> list[str]:
    out = ["| target | measured | goal | verdict |", "| --- | ---: | --- | --- |"]
    for t in results["targets"]:
        if t["met"] is None or "no target" in str(t["goal"]):
            verdict = f"info: {t['detail']}"
        elif t["met"]:
            verdict = f"met: {t['detail']}"
        else:
            verdict = f"**missed**: {t['detail']}"
        out.append(f"| {t['target']} | {t['value']} | {t['goal']} | {verdict} |")
    return out


def full(results: dict) -> list[str]:
    sc = results["scenarios"]
    out = []
    for key in ("a-v1", "a-v2", "c-batch64", "b-titanic", "d-heavy"):
        if key in sc:
            out += [f"**{TITLES[key]}**", ""] + cases_table(sc[key]) + [""]
            if key == "b-titanic":
                for c in sc[key]["cases"]:
                    m = c["median"]
                    out.append(
                        f"- {NAMES.get(c['label'], c['label'])}: PSS of the tree "
                        f"{m['pss_mib']:.1f} MiB, peak RSS {m['peak_rss_mib']:.1f} MiB"
                    )
                out.append("")
    if "e-conns" in sc:
        out += ["**(e) connection scaling, iris V1, 1 row**", ""] + conns_table(sc["e-conns"]) + [""]
    if "f-cold" in sc:
        out += ["**(f) cold start: exec to the first 200 of an inference request**", ""]
        out += cold_table(sc["f-cold"]) + [""]
    if "g-memory" in sc:
        out += [
            "**(g) memory (MiB): PSS after every worker has served; worker RSS before the first "
            "request → after**",
            "",
        ]
        out += memory_table(sc["g-memory"]) + [""]
    if "engines" in sc:
        out += engines(results)
    out += ["**Every target, as the harness printed it**", ""] + targets_table(results)
    return out


def summary(results: dict) -> list[str]:
    """One line per scenario: serve against the stack users run today and the ceiling."""
    sc = results["scenarios"]

    def med(key: str, label: str) -> dict:
        return next(c for c in sc[key]["cases"] if c["label"] == label)["median"]

    out = [
        "| scenario | serve | the stack it replaces | serve ÷ that | bare hyper ceiling | serve ÷ ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, peer in (("a-v1", "gunicorn-flask-sklearn"), ("a-v2", "gunicorn-flask-sklearn"),
                      ("c-batch64", "gunicorn-flask-sklearn")):
        s, p, c = med(key, "serve"), med(key, peer), med(key, "ceiling")
        # The ceiling answers a fixed body: against 64 rows of work it is no ceiling.
        ceiling = (
            f"{num(c['rps'])} req/s | {s['rps'] / c['rps']:.2f}" if key != "c-batch64" else " |"
        )
        out.append(
            f"| {TITLES[key][4:]} | {num(s['rps'])} req/s, p99 {s['p99_ms']:.1f} ms "
            f"| {num(p['rps'])} req/s, p99 {p['p99_ms']:.1f} ms (gunicorn + Flask + scikit-learn) "
            f"| {s['rps'] / p['rps']:.0f} | {ceiling} |"
        )
    s, k = med("b-titanic", "serve"), med("b-titanic", "gunicorn-flask-keras")
    out.append(
        f"| titanic `POST /model`, 64 connections | {num(s['rps'])} req/s, "
        f"{s['pss_mib']:.0f} MiB PSS | {num(k['rps'], 1)} req/s, {k['pss_mib']:.0f} MiB PSS "
        f"(gunicorn + Flask + Keras) | {s['rps'] / k['rps']:,.0f} | | |"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--summary", action="store_true", help="the short table of README.md")
    args = ap.parse_args()
    with open(args.results) as f:
        results = json.load(f)
    print("\n".join(summary(results) if args.summary else full(results)))


if __name__ == "__main__":
    main()
