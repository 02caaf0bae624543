"""Real clients against the real binary: tritonclient[http] with its defaults (binary
tensors both ways, no Content-Type) and requests, on the iris and titanic examples (the
hand-built titanic model and the scikit-learn pipeline beside it), on a default skl2onnx
export with string class labels (BYTES outputs, a ZipMap) from corpus/sklearn, and on a
pipeline with a SimpleImputer, its rows holding NaN as Python's json writes it.

Run by .ci/suites/clients.sh with a venv it creates: python tests/python/test_clients.py SERVE_BIN
Exits non-zero on the first failure, printing what differed.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-5


class Server:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen(
            [binary, "-w", "2", "-b", "127.0.0.1:0", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"Listening at: https?://([0-9.:]+) ", line)
            if m:
                self.address = m.group(1)
            if "workers booted" in line:
                return
        raise SystemExit("serve did not boot:\n" + "".join(self.log))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        if code != 0:
            raise SystemExit(f"serve exited {code}")


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)
    print("ok:", what)


def as_numpy(spec):
    kind = {"FP32": np.float32, "INT64": np.int64, "BYTES": np.object_}[spec["datatype"]]
    data = spec["data"]
    if spec["datatype"] == "BYTES":
        data = [s.encode() for s in data]
    return np.array(data, dtype=kind).reshape(spec["shape"])


def triton_cases(address, model, expected, binary):
    client = httpclient.InferenceServerClient(url=address)
    check(client.is_server_live(), f"{model}: is_server_live")
    check(client.is_server_ready(), f"{model}: is_server_ready")
    check(client.is_model_ready(model), f"{model}: is_model_ready")
    meta = client.get_model_metadata(model)
    check(meta["name"] == model, f"{model}: metadata names the model")
    for case in expected["cases"]:
        inputs = []
        for name, spec in case["inputs"].items():
            arr = as_numpy(spec)
            inp = httpclient.InferInput(name, list(arr.shape), spec["datatype"])
            inp.set_data_from_numpy(arr, binary_data=binary)
            inputs.append(inp)
        outputs = None
        if binary == "named":
            outputs = [httpclient.InferRequestedOutput(n) for n in case["outputs"]]
        result = client.infer(model, inputs, outputs=outputs)
        for name, spec in case["outputs"].items():
            got = result.as_numpy(name)
            want = as_numpy(spec)
            check(got is not None and list(got.shape) == spec["shape"],
                  f"{model}/{case['name']}: {name} shape {spec['shape']} (binary={binary})")
            if spec["datatype"] == "FP32":
                diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
                check(diff <= TOLERANCE, f"{model}/{case['name']}: {name} within {TOLERANCE} (max diff {diff:.2e})")
            else:
                check(np.array_equal(got, want), f"{model}/{case['name']}: {name} equal")
    # Errors come back as exceptions carrying the server's message.
    bad = httpclient.InferInput("no_such_input", [1, 1], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 1), dtype=np.float32))
    try:
        client.infer(model, [bad])
        check(False, f"{model}: an unknown input must fail")
    except InferenceServerException as e:
        check("no_such_input" in str(e), f"{model}: the error names the unknown input ({e})")


def triton_repository(binary):
    """A Triton model repository as a Triton user brings it: iris in versions 1-3 with a
    config.pbtxt (all versions, a label file), plain without one; tritonclient's model
    configuration, per-version readiness and classification calls."""
    import shutil
    import tempfile

    iris_file = os.path.join(ROOT, "examples/iris/model.onnx")
    repo = tempfile.mkdtemp(prefix="serve-triton-")
    try:
        for v in ("1", "2", "3"):
            os.makedirs(os.path.join(repo, "iris", v))
            shutil.copy(iris_file, os.path.join(repo, "iris", v, "model.onnx"))
        os.makedirs(os.path.join(repo, "plain", "1"))
        shutil.copy(iris_file, os.path.join(repo, "plain", "1", "model.onnx"))
        with open(os.path.join(repo, "iris", "config.pbtxt"), "w") as f:
            f.write("""name: "iris"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { all { } }
input [ { name: "input", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [
  { name: "probabilities", data_type: TYPE_FP32, dims: [ 3 ], label_filename: "species.txt" }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
""")
        with open(os.path.join(repo, "iris", "species.txt"), "w") as f:
            f.write("setosa\nversicolor\nvirginica\n")
        server = Server(binary, repo)
        try:
            client = httpclient.InferenceServerClient(url=server.address)
            config = client.get_model_config("iris")
            check(config["max_batch_size"] == 8 and config["input"][0]["dims"] == [4]
                  and config["dynamic_batching"]["max_queue_delay_microseconds"] == 100,
                  f"tritonclient get_model_config reads config.pbtxt ({json.dumps(config)[:200]})")
            plain = client.get_model_config("plain")
            check(plain["name"] == "plain" and plain["max_batch_size"] == 64
                  and plain["input"][0]["data_type"] == "TYPE_FP32",
                  "tritonclient get_model_config without config.pbtxt: what serve knows")
            for v in ("1", "2", "3"):
                check(client.is_model_ready("iris", v), f"is_model_ready(iris, {v})")
            check(not client.is_model_ready("iris", "4"), "is_model_ready(iris, 4) is False")
            meta = client.get_model_metadata("iris")
            check(meta["versions"] == ["3", "2", "1"], f"metadata lists every version ({meta['versions']})")
            rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
            for binary_data in (True, False):
                x = httpclient.InferInput("input", list(rows.shape), "FP32")
                x.set_data_from_numpy(rows, binary_data=binary_data)
                out = httpclient.InferRequestedOutput("probabilities", binary_data=binary_data,
                                                      class_count=2)
                result = client.infer("iris", [x], outputs=[out], model_version="2")
                top = result.as_numpy("probabilities")
                check(result.get_response()["model_version"] == "2", "model_version 2 answers as 2")
                text = [[e.decode() if isinstance(e, bytes) else e for e in row] for row in top]
                ok = (top.shape == (2, 2) and text[0][0].endswith(":0:setosa")
                      and text[1][0].endswith(":2:virginica")
                      and float(text[0][0].split(":")[0]) >= float(text[0][1].split(":")[0]))
                check(ok, f"class_count=2 (binary_data={binary_data}): {text}")
            # Two requests of two rows each reached version 2, none the others.
            every = client.get_inference_statistics()["model_stats"]
            names = sorted((e["name"], e["version"]) for e in every)
            check(names == [("iris", "1"), ("iris", "2"), ("iris", "3"), ("plain", "1")],
                  f"get_inference_statistics() lists every model version ({names})")
            two = client.get_inference_statistics("iris", "2")["model_stats"][0]
            got = (two["inference_count"], two["inference_stats"]["success"]["count"],
                   two["inference_stats"]["fail"]["count"])
            check(got == (4, 2, 0), f"statistics of iris version 2 are exact ({got})")
            # How the rows ran (one call of two, or two of one: serve's batching measures
            # which is cheaper) is what batch_stats says, and it adds up.
            batches = two["batch_stats"]
            rows = sum(b["batch_size"] * b["compute_infer"]["count"] for b in batches)
            calls = sum(b["compute_infer"]["count"] for b in batches)
            check(rows == 4 and calls == two["execution_count"] and calls in (2, 3, 4),
                  f"batch_stats add up to the rows and the executions ({batches})")
            three = client.get_inference_statistics("iris", "3")["model_stats"][0]
            check(three["inference_count"] == 0 and three["last_inference"] == 0,
                  "statistics of iris version 3: nothing yet")
            per_model = client.get_inference_statistics("iris")["model_stats"]
            check(len(per_model) == 3, "get_inference_statistics(iris): each of its versions")
        finally:
            server.stop()
    finally:
        shutil.rmtree(repo)


def explicit_repository():
    """A repository for --model-control explicit: iris (a Triton directory with a
    config.pbtxt) and broken.onnx, which is not a model."""
    import shutil
    import tempfile

    repo = tempfile.mkdtemp(prefix="serve-explicit-")
    os.makedirs(os.path.join(repo, "iris", "1"))
    shutil.copy(os.path.join(ROOT, "examples/iris/model.onnx"), os.path.join(repo, "iris", "1", "model.onnx"))
    with open(os.path.join(repo, "iris", "config.pbtxt"), "w") as f:
        f.write('name: "iris"\nmax_batch_size: 8\n')
    with open(os.path.join(repo, "broken.onnx"), "wb") as f:
        f.write(b"not a model")
    return repo


def explicit_control(binary, client_module, label):
    """Triton's explicit model control as tritonclient drives it (Seldon Core 2 and ModelMesh
    call the same RPCs): an empty start, load_model, inference, a configuration given with
    the load, a model that cannot load (its error; the loaded model serves on), unload_model
    and the repository index after each. `client_module` is tritonclient.http or .grpc."""
    import shutil

    repo = explicit_repository()
    server = Server(binary, "--model-control", "explicit", repo)
    try:
        address = server.address
        client = client_module.InferenceServerClient(url=address)

        http = client_module is httpclient

        def index():
            if http:
                got = client.get_model_repository_index()
            else:
                got = client.get_model_repository_index(as_json=True).get("models", [])
            return {m["name"]: (m.get("state", ""), m.get("reason", "")) for m in got}

        check(client.is_server_ready(), f"{label}: ready with no model loaded")
        check(index() == {"broken": ("UNAVAILABLE", "unloaded"), "iris": ("UNAVAILABLE", "unloaded")},
              f"{label}: the index lists the repository, nothing loaded ({index()})")
        client.load_model("iris")
        check(client.is_model_ready("iris"), f"{label}: load_model(iris) then is_model_ready")
        check(index()["iris"][0] == "READY", f"{label}: the index says iris is READY")
        x = client_module.InferInput("input", [1, 4], "FP32")
        x.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
        probabilities = client.infer("iris", [x]).as_numpy("probabilities")
        check(probabilities.shape == (1, 3) and probabilities[0][0] > 0.9,
              f"{label}: iris answers after its load ({probabilities})")

        def max_batch():
            if http:
                config = client.get_model_config("iris")
            else:
                config = client.get_model_config("iris", as_json=True)["config"]
            return int(config["max_batch_size"])

        check(max_batch() == 8, f"{label}: config.pbtxt's max_batch_size ({max_batch()})")
        client.load_model("iris", config=json.dumps({"name": "iris", "max_batch_size": 2}))
        check(max_batch() == 2, f"{label}: load_model(config=...) replaces config.pbtxt ({max_batch()})")
        try:
            client.load_model("broken")
            check(False, f"{label}: load_model(broken) must fail")
        except InferenceServerException as e:
            ok = e.status() in ("400", "StatusCode.INVALID_ARGUMENT") and "not an ONNX model" in e.message()
            check(ok, f"{label}: load_model(broken) fails with the proof's error ({e.status()}: {e.message()})")
        check(client.is_model_ready("iris"), f"{label}: iris serves on after the failed load")
        client.unload_model("iris")
        check(not client.is_model_ready("iris"), f"{label}: unload_model(iris)")
        check(index()["iris"] == ("UNAVAILABLE", "unloaded"), f"{label}: the index says unloaded")
    finally:
        server.stop()
        shutil.rmtree(repo)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/serve")
    with open(os.path.join(ROOT, "examples/iris/expected.json")) as f:
        iris = json.load(f)
    with open(os.path.join(ROOT, "examples/titanic/expected.json")) as f:
        titanic = json.load(f)
    with open(os.path.join(ROOT, "examples/titanic/expected_sklearn.json")) as f:
        titanic_sklearn = json.load(f)
    labelled = os.path.join(ROOT, "corpus/sklearn/logreg_string_labels")
    with open(labelled + ".json") as f:
        corpus_case = json.load(f)
    string_labels = {"cases": [dict(name="corpus rows", **corpus_case)]}

    explicit_control(binary, httpclient, "http explicit control")

    server = Server(binary)  # no APP: the embedded iris model
    try:
        for mode in (True, False, "named"):
            triton_cases(server.address, "iris", iris, mode)
        r = requests.post(f"http://{server.address}/v1/models/iris:predict",
                          json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
        labels = [p["label"] for p in r.json()["predictions"]]
        check(r.status_code == 200 and labels == [0, 2], f"requests: V1 predict labels {labels}")
    finally:
        server.stop()

    server = Server(binary, os.path.join(ROOT, "examples/titanic"))
    try:
        for mode in (True, False):
            triton_cases(server.address, "titanic", titanic, mode)
            triton_cases(server.address, "titanic_sklearn", titanic_sklearn, mode)
        r = requests.post(f"http://{server.address}/model",
                          json={"Age": 22, "Fare": 7.25, "Embarked": "S", "Sex": "male", "Pclass": 3})
        p = r.json()["predict"]
        check(r.status_code == 200 and 0.0 <= p <= 1.0, f"requests: POST /model answers predict={p}")
    finally:
        server.stop()

    server = Server(binary, labelled + ".onnx")
    try:
        for mode in (True, False):
            triton_cases(server.address, "logreg_string_labels", string_labels, mode)
        r = requests.post(f"http://{server.address}/v1/models/logreg_string_labels:predict",
                          json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        pred = r.json()["predictions"][0]
        check(r.status_code == 200 and pred["output_label"] == "setosa"
              and set(pred["output_probability"]) == {"setosa", "versicolor", "virginica"},
              f"requests: V1 answers a string label and probabilities by label ({pred})")
    finally:
        server.stop()
    # Missing values: a pipeline with a SimpleImputer, its rows holding NaN. tritonclient with
    # binary_data=False and json.dumps both write NaN bare (requests' json= refuses NaN on the
    # client's side, so data= with json.dumps is what users write).
    imputer = os.path.join(ROOT, "corpus/sklearn/pipeline_imputer_logreg")
    with open(imputer + ".json") as f:
        imputer_case = json.load(f)
    server = Server(binary, imputer + ".onnx")
    try:
        for mode in (True, False):
            triton_cases(server.address, "pipeline_imputer_logreg",
                         {"cases": [dict(name="rows with NaN", **imputer_case)]}, mode)
        x = as_numpy(imputer_case["inputs"]["X"])
        labels = np.array(imputer_case["outputs"]["output_label"]["data"])
        probs = as_numpy(imputer_case["outputs"]["output_probability"])
        nan_rows = np.flatnonzero(np.isnan(x).any(axis=1))[:20]
        check(len(nan_rows) >= 10, f"the corpus case has rows with NaN ({len(nan_rows)})")
        base = f"http://{server.address}"
        for i in nan_rows:
            row = [float(v) for v in x[i]]
            body = json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": row}]})
            check("NaN" in body, "json.dumps writes NaN bare")
            r = requests.post(f"{base}/v2/models/pipeline_imputer_logreg/infer", data=body,
                              headers={"Content-Type": "application/json"})
            out = {o["name"]: o["data"] for o in r.json()["outputs"]} if r.status_code == 200 else {}
            ok = (r.status_code == 200 and out["output_label"] == [labels[i]]
                  and np.max(np.abs(np.array(out["output_probability"]) - probs[i])) <= TOLERANCE)
            check(ok, f"requests + json.dumps, V2, row {i} {row}: {r.status_code} {r.text[:200]}")
            r = requests.post(f"{base}/v1/models/pipeline_imputer_logreg:predict",
                              data=json.dumps({"instances": [row]}))
            pred = r.json()["predictions"][0] if r.status_code == 200 else {}
            got = [pred.get("output_probability", {}).get(str(c)) for c in range(probs.shape[1])]
            ok = (r.status_code == 200 and pred["output_label"] == labels[i]
                  and None not in got and np.max(np.abs(np.array(got) - probs[i])) <= TOLERANCE)
            check(ok, f"requests + json.dumps, V1, row {i}: {r.status_code} {r.text[:200]}")
    finally:
        server.stop()
    triton_repository(binary)
    print("all client checks passed")


if __name__ == "__main__":
    main()
