#!/usr/bin/env bash
# Validates config/kserve offline: no cluster, no KServe, no network.
#
#   bash .ci/deploy/kserve-validate.sh target/debug/serve
#
# 1. Every manifest against KServe's CRD schemas, vendored in .ci/deploy/kserve-crds (source,
#    version and license in its README), with the jsonschema package of the tools venv
#    (.ci/deploy/setup.sh). The schema is found from the manifest's apiVersion and kind: a
#    misspelt one has none and fails. Strictly: KServe's schemas leave objects open (no
#    additionalProperties), and the API server drops a field it does not know, silently unless
#    `kubectl apply --validate=strict`; here an object that lists its properties, and neither
#    has additionalProperties nor x-kubernetes-preserve-unknown-fields, is closed, so a misspelt
#    field fails. metadata, which the CRDs leave as `type: object` (the API server checks it
#    itself), is validated as Kubernetes' ObjectMeta by kubernetes-validate --strict.
# 2. The pod KServe would make of the runtime and each InferenceService
#    (.ci/deploy/kserve-pod.py: the containers merged, {{.Name}} filled in, the model volume at
#    /mnt/models) against the Kubernetes schemas, kubernetes-validate --strict, for each version
#    in K8S_VERSIONS, as k8s-validate.sh does; and its podman form, which the kserve test plays.
# 3. Each pod's command line accepted by the serve binary given as $1, in the container's
#    environment (its env and the image's PORT and WEB_CONCURRENCY, read from the Dockerfile),
#    with examples/iris in a Triton model directory where /mnt/models would be:
#    `serve --check-config` (the model built) and `--print-config`, which must say:
#    model_name = the InferenceService's name, bind = the container's port.
# 4. What must agree: each InferenceService names the runtime, a model format and a protocol
#    it lists; the probes and the Prometheus annotation name the container's port; a grpc-v2
#    InferenceService names that port h2c; the pod's grace period (Kubernetes' 30 s unless
#    the InferenceService sets it) >= serve's graceful_timeout + 5 s.
# Any problem: exit 1 with a line naming the file. KSERVE_DIR (default config/kserve) points
# the script at another copy of the manifests: a copy with a misspelt field must fail.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SERVE=$(serve_arg "$@")
KSERVE_DIR=$(cd "${KSERVE_DIR:-$ROOT/config/kserve}" && pwd)
export KSERVE_DIR
CRDS=$ROOT/.ci/deploy/kserve-crds
PY=$TOOLS/bin/python
[ -x "$PY" ] || fail "$PY is missing: run .ci/deploy/setup.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

manifests=("$KSERVE_DIR"/*.yaml)
[ -f "${manifests[0]}" ] || fail "$KSERVE_DIR: no manifests"
isvcs=("$KSERVE_DIR"/isvc-*.yaml)
[ -f "${isvcs[0]}" ] || fail "$KSERVE_DIR: no InferenceService (isvc-*.yaml)"

echo "== KServe's CRD schemas (v0.20.0, closed objects), metadata as ObjectMeta (Kubernetes $K8S_VERSIONS)"
"$PY" - "$CRDS" "$K8S_VERSIONS" "${manifests[@]}" <<'EOF' || fail "config/kserve does not validate against KServe's CRDs (see above)"
import os, sys
import jsonschema, json, yaml
import kubernetes_validate

crds, versions, files = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
SCHEMA_KEYS = ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf")


def closed(schema):
    """schema, with every object that lists its properties and says nothing of others closed."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k == "properties":
            out[k] = {name: closed(s) for name, s in v.items()}
        elif k in SCHEMA_KEYS:
            out[k] = closed(v)
        else:
            out[k] = v  # type, required, enum, default...: values, not schemas
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


schemas = {}
problems = 0
for path in files:
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if not docs:
        print(f"{name}: no resource in the file", file=sys.stderr)
        problems += 1
    for doc in docs:
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        what = f"{name}: {kind} {(doc.get('metadata') or {}).get('name')}"
        file = f"{kind.lower()}-{api.replace('/', '-')}.json"
        if not os.path.exists(os.path.join(crds, file)):
            print(f"{what}: no KServe schema for kind {kind!r}, apiVersion {api!r} "
                  f"(a misspelt kind or apiVersion? the vendored ones: {sorted(f for f in os.listdir(crds) if f.endswith('.json'))})",
                  file=sys.stderr)
            problems += 1
            continue
        if file not in schemas:
            with open(os.path.join(crds, file), encoding="utf-8") as f:
                schemas[file] = jsonschema.Draft4Validator(closed(json.load(f)))
        errors = sorted(schemas[file].iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errors:
            at = ".".join(str(p) for p in e.absolute_path) or "(the document)"
            print(f"{what}: {at}: {e.message}", file=sys.stderr)
        problems += len(errors)
        meta = doc.get("metadata") or {}
        if not meta.get("name"):
            print(f"{what}: metadata.name is missing", file=sys.stderr)
            problems += 1
        for v in versions:
            try:
                kubernetes_validate.validate(
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                at = ".".join(str(p) for p in e.absolute_path)
                print(f"{what}: {at}: {e.message} (ObjectMeta, Kubernetes {v})", file=sys.stderr)
                problems += 1
        if not errors:
            print(f"  ok {what} against {file}")
sys.exit(1 if problems else 0)
EOF

echo "== the pods KServe would make (.ci/deploy/kserve-pod.py), --strict, Kubernetes $K8S_VERSIONS"
for isvc in "${isvcs[@]}"; do
    name=$(basename "$isvc" .yaml)
    "$PY" "$ROOT/.ci/deploy/kserve-pod.py" "$work/pod-$name.yaml" "$isvc" ||
        fail "kserve-pod.py could not make the pod of runtime.yaml and $name.yaml"
    k8s_validate "$work/pod-$name.yaml" "the pod of runtime.yaml and $name.yaml"
done
mkdir -p "$work/models/iris/1"
cp "$ROOT/examples/iris/model.onnx" "$work/models/iris/1/model.onnx"
"$PY" "$ROOT/.ci/deploy/kserve-pod.py" "$work/pod-podman.yaml" "$KSERVE_DIR/isvc-v2.yaml" \
    --podman 18080 --models "$work/models" ||
    fail "kserve-pod.py could not write the podman form of isvc-v2.yaml's pod"
k8s_validate "$work/pod-podman.yaml" "kserve-pod.py's podman form"

echo "== the pods' serve command lines against $SERVE"
"$PY" - "$SERVE" "$ROOT/Dockerfile" "$work" "${isvcs[@]}" <<'EOF' || fail "config/kserve: serve or the manifests disagree (see above)"
import os, re, subprocess, sys, tomllib
import yaml

serve, dockerfile, work, isvcs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
MODELS = "/mnt/models"
# The image's environment: its ENV lines (PORT=8080 WEB_CONCURRENCY=2).
image_env = {}
for line in open(dockerfile, encoding="utf-8"):
    if line.startswith("ENV "):
        image_env.update(kv.split("=", 1) for kv in line.split()[1:])
if "PORT" not in image_env:
    sys.exit(f"{dockerfile}: no ENV PORT=... (the runtime's serve binds 0.0.0.0:$PORT)")

runtime = next(d for d in yaml.safe_load_all(open(os.path.join(os.environ["KSERVE_DIR"], "runtime.yaml"))) if d)
rspec = runtime["spec"]
formats = {(f["name"], f.get("version")) for f in rspec.get("supportedModelFormats", [])}
for path in isvcs:
    name = os.path.basename(path)
    isvc = next(d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d)
    isvc_name = isvc["metadata"]["name"]
    model = isvc["spec"]["predictor"]["model"]
    fmt = model.get("modelFormat", {})
    if not any(n == fmt.get("name") and fmt.get("version") in (None, v) for n, v in formats):
        sys.exit(f"{name}: modelFormat {fmt} is not among runtime.yaml's supportedModelFormats")
    protocol = model.get("protocolVersion")
    if protocol not in rspec.get("protocolVersions", []):
        sys.exit(f"{name}: protocolVersion {protocol} is not among runtime.yaml's protocolVersions")

    pod = yaml.safe_load(open(os.path.join(work, f"pod-{name[:-5]}.yaml"), encoding="utf-8"))
    c = pod["spec"]["containers"][0]
    ports = c.get("ports", [])
    if len(ports) != 1:
        sys.exit(f"{name}: the container has {len(ports)} ports; serve answers everything on one")
    port = ports[0]["containerPort"]
    for probe in ("readinessProbe", "livenessProbe"):
        p = (c.get(probe) or {}).get("httpGet", {}).get("port")
        if p != port:
            sys.exit(f"runtime.yaml: {probe} asks port {p}, the container's port is {port}")
    prom = pod["metadata"].get("annotations", {}).get("prometheus.kserve.io/port")
    if prom != str(port):
        sys.exit(f"runtime.yaml: prometheus.kserve.io/port is {prom}, the container's port is {port}")
    if protocol == "grpc-v2" and ports[0].get("name") != "h2c":
        sys.exit(f"{name}: a grpc-v2 InferenceService's port must be named h2c "
                 f"(KServe and Knative then speak HTTP/2 to it); it is {ports[0].get('name')!r}")

    env = {"PATH": os.environ["PATH"], **image_env}
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    models = os.path.join(work, "models")
    args = [a.replace(MODELS, models) for a in c.get("args", [])]
    checked = subprocess.run([serve, "--check-config", *args], env=env, capture_output=True, text=True)
    out = checked.stdout + checked.stderr
    if checked.returncode != 0:
        sys.exit(f"{name}: serve --check-config {' '.join(args)}: exit {checked.returncode}\n{out}")
    printed = subprocess.run([serve, "--print-config", *args], env=env, capture_output=True, text=True)
    if printed.returncode != 0:
        sys.exit(f"{name}: serve --print-config refused its arguments:\n{printed.stderr}")
    cfg = tomllib.loads(printed.stdout)
    if cfg.get("model_name") != isvc_name:
        sys.exit(f"{name}: serve would name the model {cfg.get('model_name')!r}, not {isvc_name!r}")
    binds = {b.rsplit(":", 1)[-1] for b in cfg["bind"]}
    if binds != {str(port)}:
        sys.exit(f"{name}: serve would bind {cfg['bind']}, the container's port is {port}")
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    if grace < cfg["graceful_timeout"] + 5:
        sys.exit(f"{name}: the pod's grace period {grace} s < serve's graceful_timeout "
                 f"{cfg['graceful_timeout']:g} s + 5 s")
    said = out.strip().splitlines()[0] if out.strip() else ""
    print(f"  ok {name}: {said.replace(models, MODELS)}; bind {cfg['bind']} = port "
          f"{ports[0].get('name')} {port}; {protocol}; grace {grace} >= "
          f"{cfg['graceful_timeout']:g} + 5")
EOF

echo "kserve-validate: every manifest in $KSERVE_DIR is valid"
