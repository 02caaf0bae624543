"""/metrics as Prometheus and its libraries read it: `promtool check metrics` on the text format,
and prometheus_client's OpenMetrics parser on the OpenMetrics answer, with the pinned names,
types and labels, and traffic of every protocol counted exactly (as differences between two
scrapes, whatever the other checks sent before).

Called by test_web.py's check_metrics; PROMTOOL names the promtool binary (web.sh extracts it
from Debian's prometheus package without installing the daemon).
"""

import json
import os
import subprocess
import urllib.error
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

OPENMETRICS = "application/openmetrics-text; version=1.0.0"

# The pinned names and labels (README, "Watching it"): dashboards rely on them.
PINNED = {
    "serve_requests": ("counter", {"model", "protocol", "code"}),
    "serve_request_duration_seconds": ("histogram", {"model", "protocol"}),
    "serve_queue_duration_seconds": ("histogram", {"model"}),
    "serve_inference_duration_seconds": ("histogram", {"model"}),
    "serve_batch_rows": ("histogram", {"model"}),
    "serve_model_calls": ("counter", {"model"}),
    "serve_requests_cancelled": ("counter", {"model", "reason"}),
    "serve_requests_in_flight": ("gauge", {"model"}),
    "serve_queue_depth": ("gauge", {"model"}),
    "serve_workers": ("gauge", {"state"}),
    "serve_worker_connections": ("gauge", {"slot"}),
    "serve_connections": ("counter", set()),
    "serve_connections_recycled": ("counter", set()),
    "serve_worker_restarts": ("counter", {"cause"}),
    "serve_reloads": ("counter", {"result"}),
    "serve_model_load_seconds": ("histogram", {"model"}),
    "serve_build_info": ("gauge", {"version"}),
}


def request(url, body=None, accept=None):
    req = urllib.request.Request(url, data=body)
    if accept:
        req.add_header("Accept", accept)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.headers.get("Content-Type"), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def openmetrics(base, check, out=None):
    """One OpenMetrics scrape, parsed: {family name: family}."""
    status, ctype, text = request(base + "/metrics", accept=OPENMETRICS)
    check(status == 200 and ctype.startswith("application/openmetrics-text"),
          f"/metrics answers OpenMetrics when asked ({ctype})")
    if out:
        with open(os.path.join(out, "metrics.openmetrics.txt"), "w") as f:
            f.write(text)
    return {f.name: f for f in text_string_to_metric_families(text)}


def requests_total(families, **labels):
    return sum(
        s.value
        for s in families["serve_requests"].samples
        if s.name == "serve_requests_total" and all(s.labels.get(k) == v for k, v in labels.items())
    )


def check_scrape(base, app, out, check):
    """promtool on the text format; the OpenMetrics parser and the pinned families."""
    promtool = os.environ.get("PROMTOOL", "promtool")
    status, ctype, text = request(base + "/metrics")
    check(status == 200 and ctype.startswith("text/plain; version=0.0.4"),
          f"{app}: /metrics answers the text format ({ctype})")
    with open(os.path.join(out, "metrics.txt"), "w") as f:
        f.write(text)
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    check(lint.returncode == 0,
          f"{app}: promtool check metrics is clean (exit {lint.returncode}) {lint.stdout}{lint.stderr}")
    families = openmetrics(base, check, out)
    for name, (kind, labels) in PINNED.items():
        family = families.get(name)
        check(family is not None and family.type == kind, f"{app}: {name} is a {kind}")
        wrong = [s for s in family.samples if set(s.labels) - {"le"} != labels]
        check(not wrong, f"{app}: every {name} sample has the labels {sorted(labels)} {wrong[:1]}")


def check_counts(base, check):
    """Traffic of every protocol on the embedded iris, counted exactly."""
    before = openmetrics(base, check)
    infer = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                    "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
    for _ in range(5):
        check(request(base + "/v2/models/iris/infer", infer)[0] == 200, "iris: V2 infer answers 200")
    v1 = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    check(request(base + "/v1/models/iris:predict", v1)[0] == 200, "iris: V1 predict answers 200")
    check(request(base + "/v2/health/ready")[0] == 200, "iris: readiness answers 200")
    check(request(base + "/nowhere")[0] == 404, "iris: an unknown path answers 404")
    check(request(base + "/v2/models/iris/infer", b"{")[0] == 400, "iris: a broken body answers 400")
    after = openmetrics(base, check)

    def sent(**labels):
        return requests_total(after, **labels) - requests_total(before, **labels)

    check(sent(model="iris", protocol="v2", code="200") == 5, "iris: the 5 V2 requests are counted")
    check(sent(model="iris", protocol="v1", code="200") == 1, "iris: the V1 request is counted")
    check(sent(model="iris", protocol="v2", code="400") == 1, "iris: the 400 is counted")
    check(sent(model="", protocol="health", code="200") == 1, "iris: the probe is counted")
    check(sent(model="", protocol="other", code="404") == 1, "iris: the 404 is counted")
    check(sent(model="", protocol="admin", code="200") == 1, "iris: the first scrape is counted")
    workers = {s.labels["state"]: s.value for s in after["serve_workers"].samples}
    check(workers.get("serving") == 2, f"iris: 2 workers serving {workers}")


def check_status(base, app, out, master, check):
    """/status as JSON: valid against the schema /openapi.json gives it, and listing exactly
    the master's live worker processes."""
    import jsonschema

    with open(os.path.join(out, "openapi.json")) as f:
        doc = json.load(f)
    op = doc["paths"]["/status"]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    status, ctype, text = request(base + "/status", accept="application/json")
    check(status == 200 and ctype == "application/json", f"{app}: /status answers JSON when asked")
    body = json.loads(text)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(body))
    check(not errors, f"{app}: /status matches its OpenAPI schema {[e.message for e in errors[:2]]}")
    check(body["master"]["pid"] == master, f"{app}: /status names the master {master}")
    children = set()
    for task in os.listdir(f"/proc/{master}/task"):
        with open(f"/proc/{master}/task/{task}/children") as f:
            children.update(int(p) for p in f.read().split())
    listed = {w["pid"] for w in body["workers"]}
    check(listed == children, f"{app}: /status lists the master's children {sorted(children)}")
    # The connection asking is open while /status answers: some worker counts it.
    open_now = sum(w["connections"] for w in body["workers"])
    check(open_now >= 1, f"{app}: /status counts the connections open, its own included ({open_now})")
