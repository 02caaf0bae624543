"""Draws a results file of bench/run.py: python chart.py RESULTS.json OUT.svg (matplotlib).

One page, one panel per scenario; serve is always the dark bar, the ceiling grey, the peers
light. Throughput panels use a log scale: the stacks differ by orders of magnitude.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERVE, CEIL, PEER, ALT = "#1f4e79", "#9e9e9e", "#f0a35e", "#6aa6d6"
NAMES = {
    "serve": "serve",
    "ceiling": "bare hyper (ceiling)",
    "gunicorn-flask-sklearn": "gunicorn+Flask+sklearn",
    "gunicorn-flask-onnxruntime": "gunicorn+Flask+onnxruntime",
    "granian-flask-onnxruntime": "granian+Flask+onnxruntime",
    "mlserver": "MLServer 1.7",
    "serve-nobatch": "serve, batching off",
    "serve-reuseport": "serve --reuse-port",
    "ceiling-reuseport": "ceiling, SO_REUSEPORT",
    "gunicorn-flask-keras": "gunicorn+Flask+Keras",
}


def color(label):
    if label.startswith("serve"):
        return SERVE if label == "serve" else ALT
    if label.startswith("ceiling"):
        return CEIL
    return PEER


def cases(res, sc):
    return res["scenarios"].get(sc, {}).get("cases", [])


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else (f"{v:.1f}" if v >= 1 else f"{v:.2f}")


def bars(ax, items, title, xlabel, log=True, note=None):
    """items: [(label, value, annotation)] drawn top to bottom."""
    if not items:
        ax.set_visible(False)
        return
    labels = [NAMES.get(i[0], i[0]) for i in items]
    vals = [i[1] for i in items]
    y = range(len(items))
    ax.barh(list(y), vals, color=[color(i[0]) for i in items])
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    if log:
        ax.set_xlim(left=min(v for v in vals if v > 0) / 3 if any(v > 0 for v in vals) else 1,
                    right=max(vals) * 20)
    else:
        ax.set_xlim(right=max(vals) * 1.35)
    for yi, (_, v, ann) in zip(y, items):
        ax.text(v, yi, f"  {fmt(v)}{('  ' + ann) if ann else ''}", va="center", fontsize=8)
    ax.set_title(title, fontsize=10, loc="left", fontweight="bold")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", alpha=0.3, which="both")
    if note:
        ax.text(0.99, 0.02, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                color="#555")


def throughput(ax, res, sc, title, order):
    cs = {c["label"]: c["median"] for c in cases(res, sc)}
    s = cs.get("serve")
    items = []
    for lab in order:
        if lab in cs:
            m = cs[lab]
            r = s["rps"] / m["rps"] if s and m["rps"] else 0
            ratio = (f"serve ÷ this = {r:.2f}" if r < 10 else f"serve ÷ this = {r:.0f}") \
                if s and lab != "serve" else ""
            items.append((lab, m["rps"], f"p99 {m['p99_ms']:.1f} ms  {ratio}".rstrip()))
    bars(ax, items, title, "requests/s (log scale), median of rounds; p99 latency")


def main():
    res = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    fig, axes = plt.subplots(4, 2, figsize=(15, 19))
    ax = axes.ravel()
    peers = ["serve", "ceiling", "gunicorn-flask-sklearn", "gunicorn-flask-onnxruntime",
             "granian-flask-onnxruntime", "mlserver"]
    throughput(ax[0], res, "a-v1", "(a) iris, 1 row, V1 JSON, 64 connections",
               peers + ["serve-reuseport", "ceiling-reuseport", "serve-nobatch"])
    throughput(ax[1], res, "a-v2", "(a) iris, 1 row, V2 JSON, 64 connections", peers)
    throughput(ax[2], res, "c-batch64", "(c) iris, 64 rows per request, V2 JSON", peers)

    # (b) titanic: throughput and memory side by side as two bar groups.
    cs = {c["label"]: c["median"] for c in cases(res, "b-titanic")}
    items = []
    for lab in ("serve", "gunicorn-flask-keras"):
        if lab in cs:
            m = cs[lab]
            items.append((lab, m["rps"], f"p50 {m['p50_ms']:.1f} ms\nPSS {m['pss_mib']:.0f} MiB, "
                                         f"peak RSS {m['peak_rss_mib']:.0f} MiB"))
    if len(items) == 2 and items[1][1] > 0:
        items[1] = (items[1][0], items[1][1],
                    items[1][2] + f"\nserve ×{items[0][1] / items[1][1]:,.0f} req/s")
    bars(ax[3], items, "(b) titanic POST /model, 64 connections", "requests/s (log scale)")

    # (e) connection scaling.
    a = ax[4]
    for lab, col in (("serve", SERVE), ("ceiling", CEIL)):
        pts = sorted((c["conns"], c["median"]) for c in cases(res, "e-conns") if c["label"] == lab)
        if pts:
            a.plot([p[0] for p in pts], [p[1]["rps"] for p in pts], "o-", color=col,
                   label=NAMES[lab])
            for x, m in pts:
                a.annotate(f"{m['rps']:,.0f}/s\np99 {m['p99_ms']:.1f} ms", (x, m["rps"]),
                           textcoords="offset points", xytext=(0, 8 if lab == "serve" else -24),
                           ha="center", fontsize=7, color=col)
    a.set_xscale("log", base=2)
    a.set_xticks([1, 16, 64, 256], ["1", "16", "64", "256"])
    a.set_ylim(bottom=0)
    a.set_title("(e) connection scaling, iris V1, 1 row", fontsize=10, loc="left",
                fontweight="bold")
    a.set_xlabel("keep-alive connections", fontsize=8)
    a.set_ylabel("requests/s", fontsize=8)
    a.legend(fontsize=8)
    a.grid(alpha=0.3)

    # Batching on/off: iris (a-v1) and the heavy model (d).
    a = ax[5]
    groups = []
    for sc, name in (("a-v1", "iris, 1 row"), ("d-heavy", "PP-OCR cls")):
        cs = {c["label"]: c["median"] for c in cases(res, sc)}
        if "serve" in cs and "serve-nobatch" in cs:
            groups.append((name, cs["serve-nobatch"], cs["serve"]))
    for i, (name, off, on) in enumerate(groups):
        a.bar(i - 0.2, 1.0, 0.4, color=ALT, label="batching off" if i == 0 else None)
        a.bar(i + 0.2, on["rps"] / off["rps"], 0.4, color=SERVE,
              label="batching on (default)" if i == 0 else None)
        a.text(i - 0.2, 1.0, f"{off['rps']:,.0f}/s\np99 {off['p99_ms']:.1f} ms", ha="center",
               va="bottom", fontsize=7)
        a.text(i + 0.2, on["rps"] / off["rps"], f"{on['rps']:,.0f}/s\np99 {on['p99_ms']:.1f} ms",
               ha="center", va="bottom", fontsize=7)
    a.axhline(1.5, color="#c00", lw=0.8, ls="--")
    a.text(len(groups) - 0.5, 1.5, "target for iris: 1.5×", fontsize=7, color="#c00",
           ha="right", va="bottom")
    a.set_xticks(range(len(groups)), [g[0] for g in groups])
    a.set_ylabel("throughput relative to batching off", fontsize=8)
    a.set_ylim(0, max([2.0] + [g[2]["rps"] / g[1]["rps"] * 1.3 for g in groups]))
    a.set_title("dynamic batching (iris: 64 connections, PP-OCR cls: 16)", fontsize=10, loc="left",
                fontweight="bold")
    a.legend(fontsize=8, loc="upper left")

    # (f) cold start.
    items = [(c["label"].replace(" (reference)", ""), c["ms_median"],
              f"min {c['ms_min']:.0f}, max {c['ms_max']:.0f}")
             for c in cases(res, "f-cold")]
    bars(ax[6], items, "(f) cold start: exec to first 200 (ms, median)", "milliseconds (log)",
         note="target for iris: < 100 ms")

    # (g) memory: stacked PSS, master + each worker.
    a = ax[7]
    mem = cases(res, "g-memory")
    labels = []
    for i, c in enumerate(mem):
        ld = c["loaded"]
        bottom = ld["master"]["pss_mib"]
        a.bar(i, bottom, color=CEIL, label="master" if i == 0 else None)
        for j, w in enumerate(ld["workers"]):
            a.bar(i, w["pss_mib"], bottom=bottom, color=SERVE if j == 0 else ALT,
                  edgecolor="white", lw=0.5,
                  label=("first worker" if j == 0 else "other workers") if i == 0 or
                  (j == 1 and "other workers" not in a.get_legend_handles_labels()[1]) else None)
            bottom += w["pss_mib"]
        a.text(i, bottom, f"{bottom:.0f}", ha="center", va="bottom", fontsize=8)
        labels.append(f"{c['model']}\n-w {c['workers']}\n{'preload' if c['preload'] else 'lazy'}")
    a.set_xticks(range(len(labels)), labels, fontsize=8)
    a.set_ylabel("PSS MiB (after serving)", fontsize=8)
    a.set_title("(g) memory: PSS of master + workers (rec: 21 MB model)", fontsize=10, loc="left",
                fontweight="bold")
    a.legend(fontsize=8)

    m = res["machine"]
    fig.suptitle(f"serve benchmarks, {res['started']} ({res['mode']} run: {res['settings']['rounds']} "
                 f"rounds × {res['settings']['seconds']} s, medians), {m['cpu']}, {m['cores']} cores, "
                 f"wrk on the same machine, 2 workers each", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
