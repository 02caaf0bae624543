"""The web side of serve against the real binary, with the tools its users have.

Run by .ci/suites/web.sh (which makes the venv and installs node and chromium):

    python tests/web/test_web.py SERVE_BIN [CHECK ...]

For each app (the embedded iris, examples/titanic) one server is started and every check
runs against it; CHECK names a subset: openapi, examples, postman, metrics, browser.
Generated documents and screenshots go to $SERVE_CI_ARTEFACTS (default target/ci-artefacts).
Exits non-zero on the first failure, printing what differed.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from serve import Server  # noqa: E402

ARTEFACTS = os.environ.get("SERVE_CI_ARTEFACTS", os.path.join(ROOT, "target/ci-artefacts"))
POSTMAN = os.environ.get("OPENAPI_TO_POSTMAN", "openapi-to-postmanv2@6.3.3")
NEWMAN = os.environ.get("NEWMAN", "newman@6.2.1")

# (name, APP arguments, the operations its document must list besides the server's own)
APPS = [
    ("iris", [], [
        ("post", "/v2/models/iris/infer"),
        ("post", "/v1/models/iris:predict"),
    ]),
    ("titanic", [os.path.join(ROOT, "examples/titanic")], [
        ("post", "/v2/models/titanic/infer"),
        ("post", "/v2/models/titanic_sklearn/infer"),
        ("post", "/v1/models/titanic_sklearn:predict"),
        ("post", "/model"),
        ("post", "/model/sklearn"),
    ]),
]
SERVER_OWN = [
    ("get", "/"), ("get", "/openapi.json"), ("get", "/metrics"), ("get", "/status"),
    ("get", "/v2"), ("get", "/v2/health/live"), ("get", "/v2/health/ready"),
    ("post", "/v2/repository/index"),
]


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)
    print("ok:", what)


def request(url, method="GET", body=None):
    """(status, content type, body bytes), 4xx and 5xx included."""
    data = None if body is None else body.encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.headers.get("Content-Type", ""), res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def operations(doc):
    return [(m, p) for p, item in doc["paths"].items() for m in item]


def check_openapi(server, app, out):
    """The document is valid OpenAPI 3.1 (openapi-spec-validator) and lists every route."""
    from openapi_spec_validator import validate

    status, ctype, body = request(server.base + "/openapi.json")
    check(status == 200 and ctype == "application/json", f"{app}: GET /openapi.json is JSON")
    doc = json.loads(body)
    with open(os.path.join(out, "openapi.json"), "w") as f:
        json.dump(doc, f, indent=2)
    check(doc["openapi"] == "3.1.0", f"{app}: openapi is 3.1.0")
    validate(doc)
    check(True, f"{app}: openapi-spec-validator finds the document valid")
    listed = set(operations(doc))
    for op in SERVER_OWN + dict((a[0], a[2]) for a in APPS)[app]:
        check(op in listed, f"{app}: the document lists {op[0].upper()} {op[1]}")
    ids = [item[m]["operationId"] for item in doc["paths"].values() for m in item]
    check(len(ids) == len(set(ids)), f"{app}: {len(ids)} operation ids, all different")
    return doc


def check_examples(server, app, out):
    """Every request example the document carries answers 200 as it is."""
    with open(os.path.join(out, "openapi.json")) as f:
        doc = json.load(f)
    sent = 0
    for method, path in operations(doc):
        content = doc["paths"][path][method].get("requestBody", {}).get("content", {})
        example = content.get("application/json", {}).get("example")
        if example is None:
            continue
        status, _, body = request(server.base + path, method.upper(), json.dumps(example))
        check(status == 200, f"{app}: the example of {method.upper()} {path} answers 200 "
              f"({body[:200]!r})")
        sent += 1
        if path == "/v2/models/iris/infer":
            outputs = {o["name"]: o for o in json.loads(body)["outputs"]}
            check(outputs["label"]["data"] == [0], f"{app}: the iris example is a setosa (label 0)")
    check(sent > 0, f"{app}: {sent} examples sent")


def check_postman(server, app, out):
    """README's command (openapi-to-postmanv2 with parametersResolution=Example) turns the
    document into a collection with a request per operation, each POST carrying its example
    as its body; newman (Postman's command-line runner) then sends every request of it to the
    server, and each answers 200."""
    with open(os.path.join(out, "openapi.json")) as f:
        doc = json.load(f)
    collection = os.path.join(out, "collection.json")
    cmd = ["npx", "-y", "-p", POSTMAN, "openapi2postmanv2",
           "-s", os.path.join(out, "openapi.json"), "-o", collection, "-p",
           "-O", "parametersResolution=Example"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    check(run.returncode == 0, f"{app}: {POSTMAN} converts the document "
          f"({run.stdout[-500:]}{run.stderr[-500:]})")
    with open(collection) as f:
        coll = json.load(f)
    requests = []

    def walk(items):
        for item in items:
            if "request" in item:
                requests.append(item)
            walk(item.get("item", []))

    walk(coll.get("item", []))
    ops = operations(doc)
    check(len(requests) == len(ops),
          f"{app}: the collection has {len(requests)} requests for {len(ops)} operations")
    got = {}
    for item in requests:
        req = item["request"]
        segments = req["url"]["path"] if isinstance(req["url"], dict) else []
        got[(req["method"].lower(), "/" + "/".join(s for s in segments if s))] = req
    for method, path in ops:
        check((method, path) in got, f"{app}: the collection has {method.upper()} {path}")
        example = (doc["paths"][path][method].get("requestBody", {}).get("content", {})
                   .get("application/json", {}).get("example"))
        if example is None:
            continue
        raw = got.get((method, path), {}).get("body", {}).get("raw", "")
        check(raw.strip() and json.loads(raw) == example,
              f"{app}: {method.upper()} {path} carries the document's example as its body")

    # newman sends the collection as Postman would, to the server the document names.
    report = os.path.join(out, "newman.json")
    cmd = ["npx", "-y", "-p", NEWMAN, "newman", "run", collection,
           "--env-var", f"baseUrl={server.base}", "--reporters", "json",
           "--reporter-json-export", report]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    check(run.returncode == 0, f"{app}: {NEWMAN} runs the collection "
          f"({run.stdout[-500:]}{run.stderr[-500:]})")
    with open(report) as f:
        executions = json.load(f)["run"]["executions"]
    check(len(executions) == len(ops), f"{app}: newman sent {len(executions)} requests")
    for e in executions:
        code = e.get("response", {}).get("code")
        body = bytes(e.get("response", {}).get("stream", {}).get("data", []))
        check(code == 200, f"{app}: newman's {e['item']['name']!r} answered {code} {body[:200]!r}")


# ---------------------------------------------------------------------------------------
# Metrics: promtool and prometheus_client's OpenMetrics parser, tests/web/metrics.py.
# ---------------------------------------------------------------------------------------
def check_metrics(server, app, out):
    import metrics

    metrics.check_scrape(server.base, app, out, check)
    metrics.check_status(server.base, app, out, server.pid, check)
    if app == "iris":
        metrics.check_counts(server.base, check)


# ---------------------------------------------------------------------------------------
# Browser: the front page (and /status) in a real chromium, tests/web/browser.py.
# ---------------------------------------------------------------------------------------
def check_browser(server, app, out):
    import browser

    with browser.session() as driver:
        if app == "iris":
            label = browser.front_iris(driver, server.base, os.path.join(ARTEFACTS, "front.png"))
            check(label == [0], f"{app}: the V2 form sent the example and shows label 0")
        else:
            shown = browser.front_route(driver, server.base, "/model",
                                        os.path.join(ARTEFACTS, f"front-{app}.png"))
            check("predict" in shown, f"{app}: the /model form shows the answer ({shown})")
            pids = browser.status(driver, server.base, server.pid,
                                  os.path.join(ARTEFACTS, "status.png"))
            if pids is None:
                print(f"note: {app}: /status answers 404 (not built yet): its check is skipped")
            else:
                check(pids[0] == pids[1], f"{app}: /status lists the live workers {pids[1]}")


CHECKS = {
    "openapi": check_openapi,
    "examples": check_examples,
    "postman": check_postman,
    "metrics": check_metrics,
    "browser": check_browser,
}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    binary = sys.argv[1]
    wanted = sys.argv[2:] or list(CHECKS)
    unknown = [c for c in wanted if c not in CHECKS]
    if unknown:
        raise SystemExit(f"unknown checks {unknown}; the checks are {list(CHECKS)}")
    for app, args, _ in APPS:
        out = os.path.join(ARTEFACTS, "web", app)
        os.makedirs(out, exist_ok=True)
        with Server(binary, *args) as server:
            # The later checks read the document the first one saved.
            for name in ["openapi"] + [c for c in wanted if c != "openapi"]:
                CHECKS[name](server, app, out)
    print("web: all checks passed")


if __name__ == "__main__":
    main()
