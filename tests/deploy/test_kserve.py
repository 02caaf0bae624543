"""The pod KServe makes of config/kserve's runtime and its V2 InferenceService, run for real with
`podman kube play` (.ci/deploy/kserve-pod.py writes it: the runtime's container with {{.Name}}
filled in, examples/iris at /mnt/models as KServe's storage initializer would leave it, host
network on 127.0.0.1, the local image), and asked what an InferenceService routes to it: V2
REST, V1 and gRPC's ModelInfer, all by the InferenceService's name, not the file's. No
KServe, Knative or cluster runs here; config/kserve/README.md says what is only validated.

tritonclient[grpc] asks the gRPC questions, so this runs in the tools venv (.ci/deploy/setup.sh
installs the clients suite's pins there). Run by .ci/suites/deploy.sh:
    "$TOOLS/bin/python" tests/deploy/test_kserve.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import ROOT, check, container_log, expected, free_port, podman, request, wait_ready

TOOLS = os.environ.get("TOOLS", os.path.join(ROOT, "target", "ci-tools"))
ISVC = os.path.join(ROOT, "config", "kserve", "isvc-v2.yaml")
# The container's name under podman: the pod's, then the runtime's container.
CONTAINER = "kserve-container"
SETOSA = [5.1, 3.5, 1.4, 0.2]

try:
    import numpy as np
    import tritonclient.grpc as grpcclient
    import yaml
except ImportError as e:
    sys.exit(f"FAILED: {e.name} is missing: run this with the tools venv's Python "
             f"({TOOLS}/bin/python, made by .ci/deploy/setup.sh)")


def model_dir(tmp):
    """What the storage initializer would leave at /mnt/models for gs://.../iris: a Triton
    repository of one model, named iris by its directory. Readable by the image's user 10001."""
    models = os.path.join(tmp, "models")
    os.makedirs(os.path.join(models, "iris", "1"))
    shutil.copy(os.path.join(ROOT, "examples", "iris", "model.onnx"), os.path.join(models, "iris", "1"))
    for d, _, files in os.walk(tmp):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return models


def check_rest(port, name):
    """V2 and V1 by the InferenceService's name, over HTTP/1.1, and over h2c as Knative's
    queue-proxy speaks to a port named h2c (isvc-grpc-v2.yaml)."""
    want = expected("iris", "setosa")
    status, meta = request(port, "GET", f"/v2/models/{name}")
    check(status == 200 and meta.get("name") == name, f"GET /v2/models/{name}: {status} {meta}")
    status, _ = request(port, "GET", "/v2/models/iris")
    check(status == 404, f"the directory's name iris is not served (got {status})")
    check(request(port, "GET", f"/v2/models/{name}/ready")[0] == 200, f"/v2/models/{name}/ready is 200")
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": SETOSA}]}
    status, answer = request(port, "POST", f"/v2/models/{name}/infer", body)
    outputs = {o["name"]: o["data"] for o in answer.get("outputs", [])} if status == 200 else {}
    check(
        answer.get("model_name") == name and outputs.get("label") == want["label"]["data"],
        f"POST /v2/models/{name}/infer answers setosa's label 0: {status} {answer}",
    )
    status, answer = request(port, "POST", f"/v1/models/{name}:predict", {"instances": [SETOSA]})
    predictions = answer.get("predictions") if status == 200 else None
    check(
        predictions and predictions[0].get("label") == want["label"]["data"][0],
        f"POST /v1/models/{name}:predict answers label 0: {status} {answer}",
    )
    h2c = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
         f"http://127.0.0.1:{port}/v2/health/ready"],
        capture_output=True, text=True, timeout=10,
    ).stdout
    check(h2c == "2 200", f"REST over h2c (HTTP/2 without TLS) on the same port: {h2c!r}")
    status, metrics = request(port, "GET", "/metrics")
    check(
        status == 200 and f'model="{name}"' in metrics,
        f"/metrics on the port prometheus.kserve.io/port names (8080 in the pod) counts {name}'s requests",
    )


def check_grpc(port, name):
    """ModelInfer and friends with tritonclient[grpc], on the same port as REST."""
    want = expected("iris", "setosa")
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        check(client.is_server_ready() and client.is_model_ready(name), f"gRPC: the server and {name} are ready")
        meta = client.get_model_metadata(name)
        check(meta.name == name and [i.name for i in meta.inputs] == ["input"], f"gRPC: {name}'s metadata")
        x = grpcclient.InferInput("input", [1, 4], "FP32")
        x.set_data_from_numpy(np.array([SETOSA], dtype=np.float32))
        result = client.infer(name, [x])
        label = result.as_numpy("label").tolist()
        probabilities = result.as_numpy("probabilities").ravel()
        check(
            label == want["label"]["data"]
            and np.allclose(probabilities, want["probabilities"]["data"], rtol=1e-4, atol=1e-6),
            f"gRPC ModelInfer on {name}: label {label}, probabilities {probabilities.tolist()}",
        )
    finally:
        client.close()


def check_container(container):
    """What the runtime's securityContext and the read-only model mount promise."""
    user = podman("exec", container, "id", "-u").stdout.strip()
    check(user == "10001", f"{container} runs as the non-root user 10001 (got {user})")
    for path in ("/x", "/mnt/models/x"):
        ro = podman("exec", container, "sh", "-c", f"touch {path} 2>&1 || echo read-only", check_rc=False).stdout
        check("read-only" in ro.lower(), f"{container}: {os.path.dirname(path)} is read-only")
    health = podman("healthcheck", "run", container, check_rc=False)
    check(health.returncode == 0, f"the liveness probe (serve --probe) passes: {health.stdout}{health.stderr}")


def main():
    with open(ISVC, encoding="utf-8") as f:
        name = next(d for d in yaml.safe_load_all(f) if d)["metadata"]["name"]
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="serve-kserve-")
    models = model_dir(tmp)
    out = os.path.join(tmp, "pod.yaml")
    subprocess.run(
        [sys.executable, os.path.join(ROOT, ".ci", "deploy", "kserve-pod.py"), out, ISVC,
         "--podman", str(port), "--models", models],
        check=True,
    )
    pod = f"{name}-predictor"
    container = f"{pod}-{CONTAINER}"
    podman("kube", "down", out, check_rc=False)
    try:
        podman("kube", "play", out, timeout=180)
        ready = wait_ready(port)
        logs = "" if ready else f"; its log:\n{container_log(container)}"
        check(ready, f"pod {pod} answers /v2/health/ready on 127.0.0.1:{port}{logs}")
        check_rest(port, name)
        check_grpc(port, name)
        check_container(container)

        # Kubernetes stops a pod with TERM, then KILL after the grace period (30 s by default):
        # serve drains within its --graceful-timeout (25 s) and exits 0. kube down alone sends
        # KILL in podman 4.3.1.
        start = time.time()
        podman("pod", "stop", "-t", "30", pod, timeout=90)
        took = time.time() - start
        code = podman("inspect", container, "--format", "{{.State.ExitCode}}").stdout.strip()
        check(code == "0", f"{container} exited 0 on TERM (got {code}) in {took:.2f} s")
    finally:
        podman("kube", "down", out, check_rc=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
