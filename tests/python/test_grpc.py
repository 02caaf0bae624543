"""tritonclient[grpc], unmodified, a standard grpc.health.v1 client (grpcio-health-checking) and
grpcio's reflection client against the real binary, on the same port as REST: liveness,
readiness, metadata, configuration, repository index, inference on iris and on the titanic app
(strings as BYTES), a 64-row batch, the stream API, a deadline that expires in the server's
queue, an unknown model, gzip, health and reflection; explicit model control (load and
unload); and TLS (tritonclient's ssl and root_certificates) with a bearer token in its headers.

Run by .ci/suites/clients.sh: python tests/python/test_grpc.py SERVE_BIN
Exits non-zero on the first failure, printing what differed.
"""

import json
import os
import queue
import sys

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from tritonclient.utils import InferenceServerException

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_clients import ROOT, TOLERANCE, Server, as_numpy, check, explicit_control  # noqa: E402


def compare(model, case, name, got, spec):
    check(got is not None and list(got.shape) == spec["shape"],
          f"grpc {model}/{case}: {name} shape {spec['shape']}")
    want = as_numpy(spec)
    if spec["datatype"] == "FP32":
        diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
        check(diff <= TOLERANCE, f"grpc {model}/{case}: {name} within {TOLERANCE} (max diff {diff:.2e})")
    else:
        check(np.array_equal(got, want), f"grpc {model}/{case}: {name} equal")


def inputs_of(case):
    inputs = []
    for name, spec in case["inputs"].items():
        arr = as_numpy(spec)
        inp = grpcclient.InferInput(name, list(arr.shape), spec["datatype"])
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    return inputs


def grpc_cases(address, model, expected, compression=None):
    client = grpcclient.InferenceServerClient(url=address)
    check(client.is_server_live(), f"grpc {model}: is_server_live")
    check(client.is_server_ready(), f"grpc {model}: is_server_ready")
    check(client.is_model_ready(model), f"grpc {model}: is_model_ready")
    meta = client.get_model_metadata(model, as_json=True)
    check(meta["name"] == model and meta["platform"] == "onnx_onnxv1",
          f"grpc {model}: metadata names the model and the platform")
    config = client.get_model_config(model, as_json=True)["config"]
    check(config["name"] == model and len(config["input"]) == len(meta["inputs"]),
          f"grpc {model}: get_model_config lists its inputs")
    for case in expected["cases"]:
        outputs = [grpcclient.InferRequestedOutput(n) for n in case["outputs"]]
        result = client.infer(model, inputs_of(case), outputs=outputs,
                              compression_algorithm=compression, request_id="r-7")
        check(result.get_response().id == "r-7", f"grpc {model}: the request id is echoed")
        for name, spec in case["outputs"].items():
            compare(model, case["name"], name, result.as_numpy(name), spec)
    try:
        bad = grpcclient.InferInput("no_such_input", [1, 1], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 1), dtype=np.float32))
        client.infer(model, [bad])
        check(False, f"grpc {model}: an unknown input must fail")
    except InferenceServerException as e:
        check(e.status() == "StatusCode.INVALID_ARGUMENT" and "no_such_input" in e.message(),
              f"grpc {model}: INVALID_ARGUMENT naming the unknown input ({e})")
    client.close()


def iris_extras(address):
    client = grpcclient.InferenceServerClient(url=address)
    index = client.get_model_repository_index(as_json=True)
    check([m["name"] for m in index["models"]] == ["iris"] and index["models"][0]["state"] == "READY",
          f"grpc: repository index {index}")
    try:
        client.get_model_metadata("nope")
        check(False, "grpc: an unknown model must fail")
    except InferenceServerException as e:
        check(e.status() == "StatusCode.NOT_FOUND" and "nope" in e.message() and "iris" in e.message(),
              f"grpc: NOT_FOUND naming the model and the served ones ({e.message()})")
    try:
        client.load_model("iris")
        check(False, "grpc: load must fail")
    except InferenceServerException as e:
        check(e.status() == "StatusCode.UNIMPLEMENTED" and "--model-control explicit" in e.message(),
              f"grpc: without explicit control, load is UNIMPLEMENTED naming the flag ({e.status()})")

    # 64 rows in one call, answered row for row as one row at a time.
    rng = np.random.default_rng(7)
    rows = rng.uniform(0.1, 7.0, size=(64, 4)).astype(np.float32)
    inp = grpcclient.InferInput("input", [64, 4], "FP32")
    inp.set_data_from_numpy(rows)
    batch = client.infer("iris", [inp]).as_numpy("probabilities")
    check(batch.shape == (64, 3), f"grpc: a 64-row batch answers 64 rows {batch.shape}")
    singles = []
    for r in rows[:8]:
        one = grpcclient.InferInput("input", [1, 4], "FP32")
        one.set_data_from_numpy(r.reshape(1, 4))
        singles.append(client.infer("iris", [one]).as_numpy("probabilities")[0])
    diff = float(np.max(np.abs(np.array(singles) - batch[:8])))
    check(diff <= TOLERANCE, f"grpc: batch rows equal single rows (max diff {diff:.2e})")

    # The front page's grpcurl line: its body is a ModelInferRequest in protobuf's JSON form.
    import html
    import re as _re
    import requests
    from google.protobuf import json_format
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    page = requests.get(f"http://{address}/").text
    line = _re.search(r'<pre class="curl grpcurl">grpcurl -plaintext -d (.*?) \\', page, _re.S)
    check(line is not None, "front page: a grpcurl line")
    body = html.unescape(line.group(1)).strip("'")
    request = json_format.Parse(body, service_pb2.ModelInferRequest())
    with grpc.insecure_channel(address) as channel:
        answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    check(answer.model_name == "iris" and len(answer.raw_output_contents) == len(answer.outputs),
          "front page: its grpcurl body is answered")

    # The stream API: every request answered, in order, with its id.
    answers = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    for i in range(20):
        one = grpcclient.InferInput("input", [1, 4], "FP32")
        one.set_data_from_numpy(rows[i].reshape(1, 4))
        client.async_stream_infer("iris", [one], request_id=str(i))
    got = [answers.get(timeout=30) for _ in range(20)]
    client.stop_stream()
    errors = [e for _, e in got if e is not None]
    ids = [r.get_response().id for r, _ in got if r is not None]
    check(not errors and ids == [str(i) for i in range(20)], f"grpc: stream answers 20 in order ({errors[:1]})")

    # A standard health client, as Kubernetes' grpc probe asks.
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService", "iris"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            check(status == health_pb2.HealthCheckResponse.SERVING, f"grpc.health.v1: {service!r} SERVING")
        try:
            health.Check(health_pb2.HealthCheckRequest(service="nope"))
            check(False, "grpc.health.v1: an unknown service must fail")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "grpc.health.v1: an unknown service is NOT_FOUND")
        # Server reflection, as grpcurl uses it: the services and their messages, no .proto.
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        check({"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services,
              f"reflection lists the services ({sorted(services)})")
        infer = db.FindFileContainingSymbol("inference.ModelInferRequest")
        check(infer.name == "grpc_service.proto" and "model_config.proto" in infer.dependency,
              f"reflection gives grpc_service.proto and its imports ({infer.name})")
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        first = next(watch)
        check(first.status == health_pb2.HealthCheckResponse.SERVING, "grpc.health.v1: Watch starts SERVING")
        watch.cancel()
    client.close()


def deadline(binary, how):
    """A request waiting in the queue past its deadline is answered DEADLINE_EXCEEDED and
    never reaches the model: the server's first request, while the model has no measurements
    yet, waits the batch timeout (3 s) for rows to merge with."""
    server = Server(binary, "--batch-timeout-us", "3000000", "--max-batch-size", "64")
    try:
        client = grpcclient.InferenceServerClient(url=server.address)
        inp = grpcclient.InferInput("input", [1, 4], "FP32")
        inp.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        try:
            if how == "parameter":
                # tritonclient's `timeout` parameter (microseconds): the server's deadline.
                client.infer("iris", [inp], timeout=200_000)
            else:
                # The call's deadline (grpc-timeout), which the client enforces too.
                client.infer("iris", [inp], client_timeout=0.5)
            check(False, f"grpc: a request past its deadline ({how}) must fail")
        except InferenceServerException as e:
            check(e.status() == "StatusCode.DEADLINE_EXCEEDED",
                  f"grpc: a deadline ({how}) gives DEADLINE_EXCEEDED ({e.message()})")
            if how == "parameter":
                check("iris" in e.message() and "deadline" in e.message(),
                      f"grpc: the server's message names the model and the deadline")
        client.close()
    finally:
        server.stop()


def make_certificates(directory):
    """A CA and a server certificate for localhost and 127.0.0.1 that it signed, as PEM
    files: (ca, cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("serve test CA")).issuer_name(name("serve test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(directory, n) for n in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def tls_and_tokens(binary):
    """tritonclient[grpc] over TLS (its ssl and root_certificates options) with a bearer token
    in its headers; a call without the token is UNAUTHENTICATED; grpc.health.v1 needs none."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="serve-tls-")
    try:
        ca, cert, key = make_certificates(directory)
        tokens = os.path.join(directory, "tokens")
        with open(tokens, "w") as f:
            f.write("# who may call\nsecret-token-0123 python-suite\n")
        access = os.path.join(directory, "access.log")
        server = Server(binary, "--certfile", cert, "--keyfile", key, "--auth-token-file", tokens,
                        "--access-logfile", access,
                        "--access-log-format", '%(u)s %({authorization}i)s "%(r)s" %(s)s')
        try:
            with open(ca, "rb") as f:
                ca_pem = f.read()
            client = grpcclient.InferenceServerClient(url=server.address, ssl=True,
                                                      root_certificates=ca)
            try:
                client.is_server_ready()
                check(False, "grpc tls: a call without the token must fail")
            except InferenceServerException as e:
                check(e.status() == "StatusCode.UNAUTHENTICATED" and "Bearer" in e.message(),
                      f"grpc tls: UNAUTHENTICATED without the token ({e.status()})")
            auth = {"authorization": "Bearer secret-token-0123"}
            check(client.is_server_ready(headers=auth), "grpc tls: is_server_ready with the token")
            x = grpcclient.InferInput("input", [1, 4], "FP32")
            x.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
            p = client.infer("iris", [x], headers=auth).as_numpy("probabilities")
            check(p.shape == (1, 3) and p[0][0] > 0.9, f"grpc tls: infer over TLS ({p})")
            channel = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(ca_pem))
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            check(health.status == health_pb2.HealthCheckResponse.SERVING,
                  "grpc tls: grpc.health.v1 answers without a token")
            channel.close()
        finally:
            server.stop()
        logs = "".join(server.log) + server.proc.stderr.read()
        with open(access) as f:
            accessed = f.read()
        check("python-suite [redacted]" in accessed, f"grpc tls: the access log names the token ({accessed[:200]})")
        check("secret-token-0123" not in logs + accessed, "grpc tls: the token is in no log line")
    finally:
        shutil.rmtree(directory)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/serve")
    with open(os.path.join(ROOT, "examples/iris/expected.json")) as f:
        iris = json.load(f)
    with open(os.path.join(ROOT, "examples/titanic/expected.json")) as f:
        titanic = json.load(f)
    with open(os.path.join(ROOT, "examples/titanic/expected_sklearn.json")) as f:
        titanic_sklearn = json.load(f)

    explicit_control(binary, grpcclient, "grpc explicit control")
    tls_and_tokens(binary)

    server = Server(binary)  # no APP: the embedded iris model
    try:
        grpc_cases(server.address, "iris", iris)
        grpc_cases(server.address, "iris", iris, compression="gzip")
        iris_extras(server.address)
    finally:
        server.stop()

    server = Server(binary, os.path.join(ROOT, "examples/titanic"))
    try:
        grpc_cases(server.address, "titanic", titanic)
        grpc_cases(server.address, "titanic_sklearn", titanic_sklearn)
    finally:
        server.stop()

    deadline(binary, "parameter")
    deadline(binary, "client_timeout")
    print("all gRPC client checks passed")


if __name__ == "__main__":
    main()
