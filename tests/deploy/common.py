"""Shared by the deploy tests (Python 3 standard library only): HTTP calls, a keep-alive load
generator that classifies what it sees, and podman helpers. Every wait is bounded."""

import http.client
import json
import os
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = os.environ.get("SERVE_IMAGE", "localhost/serve:ci")

# The two tutorials' calls, as their READMEs give them (examples/app.toml).
IRIS = ("/predict", {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
TITANIC = ("/model", {"Age": 22, "Fare": 7.25, "Embarked": "S", "Sex": "male", "Pclass": 3})
# A V2 inference, whose answer names the model's version.
V2_PATH = "/v2/models/iris/infer"
V2_BODY = json.dumps(
    {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
)


def expected(model, case):
    """The outputs examples/MODEL/expected.json gives for CASE."""
    with open(os.path.join(ROOT, "examples", model, "expected.json")) as f:
        return next(c for c in json.load(f)["cases"] if c["name"] == case)["outputs"]


def container_log(name):
    p = podman("logs", name, check_rc=False)
    return p.stdout + p.stderr


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)
    print("ok:", what, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, timeout=10):
    """One request on a new connection: (status, parsed JSON or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body) if isinstance(body, dict) else body
        headers = {"Content-Type": "application/json"} if data else {}
        conn.request(method, path, body=data, headers=headers)
        res = conn.getresponse()
        text = res.read().decode()
        try:
            return res.status, json.loads(text)
        except ValueError:
            return res.status, text
    finally:
        conn.close()


def wait_ready(port, within=60):
    """Waits until /v2/health/ready answers 200."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            if request(port, "GET", "/v2/health/ready", timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class Load:
    """`conns` keep-alive connections, each sending the V2 inference as soon as the last one
    was answered, until stop().

    Outcomes:
    - ok: a 200 with a JSON body;
    - refused: the connect itself failed (nothing was accepted: not a failure once the
      listener is meant to be closed, which the caller decides);
    - failed: anything else. A request sent and not answered (reset, early close, timeout),
      a truncated answer, or a status other than 200.
    A connection the server closes after an answer (Connection: close, as a draining worker
    says) is replaced by a new one, as every HTTP client does, until stop_connecting().
    """

    def __init__(self, port, conns=4, path=V2_PATH, body=V2_BODY):
        self.port, self.path, self.body = port, path, body
        self.ok = self.refused = self.failed = 0
        self.errors = []
        self.versions = []  # (time, model_version) of each answer, in order
        self.lock = threading.Lock()
        self.running = True
        self.connecting = True
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(conns)]
        for t in self.threads:
            t.start()

    def run(self):
        conn = None
        while self.running:
            if conn is None:
                if not self.connecting:
                    return
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                try:
                    conn.connect()
                except OSError:
                    conn = None
                    with self.lock:
                        self.refused += 1
                    time.sleep(0.05)
                    continue
            try:
                conn.request("POST", self.path, body=self.body, headers={"Content-Type": "application/json"})
                res = conn.getresponse()
                text = res.read()
                answer = json.loads(text) if res.status == 200 else None
                with self.lock:
                    if answer is None:
                        self.failed += 1
                        self.errors.append(f"{res.status} {text[:200]!r}")
                    else:
                        self.ok += 1
                        self.versions.append((time.time(), answer.get("model_version")))
                if res.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as e:
                with self.lock:
                    self.failed += 1
                    self.errors.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = None

    def answered(self):
        with self.lock:
            return self.ok

    def wait_for(self, n, within=30):
        """Waits until n more requests were answered: proof the load flows."""
        target = self.answered() + n
        deadline = time.time() + within
        while time.time() < deadline:
            if self.answered() >= target:
                return True
            time.sleep(0.05)
        return False

    def stop_connecting(self):
        """From now on a connection the server closes is not replaced: what a client behind a
        Kubernetes Service sees once the pod left the endpoints (new connections go to other
        pods; the open ones stay until the server closes them). Each thread ends when its
        connection does."""
        self.connecting = False

    def wait_ended(self, within=30):
        """Waits until every thread has ended by itself (after stop_connecting)."""
        deadline = time.time() + within
        for t in self.threads:
            t.join(timeout=max(0, deadline - time.time()))
        return not any(t.is_alive() for t in self.threads)

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(timeout=40)
        return self

    def summary(self):
        return f"{self.ok} answered, {self.failed} failed, {self.refused} refused; errors: {self.errors[:5]}"


def podman(*args, check_rc=True, timeout=120):
    """Runs podman; its stdout. Raises with podman's stderr when it fails."""
    p = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise SystemExit(f"FAILED: podman {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p


def run_container(name, port, *env, image=IMAGE, args=()):
    """Starts a container on the host network, bound to 127.0.0.1:port."""
    podman("rm", "-f", "-t", "0", name, check_rc=False)
    flags = ["-e", f"SERVE_CMD_ARGS=-b 127.0.0.1:{port}"]
    for e in env:
        flags += ["-e", e]
    podman("run", "-d", "--name", name, "--network", "host", *flags, image, *args)
    if not wait_ready(port):
        logs = podman("logs", name, check_rc=False)
        raise SystemExit(f"FAILED: container {name} not ready on {port}:\n{logs.stdout}{logs.stderr}")
