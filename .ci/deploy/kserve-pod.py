"""Writes the pod KServe makes of config/kserve's runtime and one of its InferenceServices; with
--podman, that pod as `podman kube play` 4.3.1 runs it on this machine.

    "$TOOLS/bin/python" .ci/deploy/kserve-pod.py OUT.yaml config/kserve/isvc-v2.yaml
    "$TOOLS/bin/python" .ci/deploy/kserve-pod.py OUT.yaml config/kserve/isvc-v2.yaml \\
        --podman PORT --models DIR [--image localhost/serve:ci]

Run it with the tools venv's Python (it has PyYAML). .ci/deploy/kserve-validate.sh validates
the first form against the Kubernetes schemas; tests/deploy/test_kserve.py plays the second.
What KServe 0.20 does, as read in its source (pkg/controller/v1beta1/inferenceservice/
components/predictor.go and utils/utils.go, pkg/utils/container_merge.go,
pkg/webhook/admission/pod/storage_initializer_injector.go), and what is made here:

- The runtime's container named kserve-container, merged with the InferenceService's
  spec.predictor.model (the container fields of it): a strategic merge patch, so maps merge,
  ports merge by containerPort, env by name, volumeMounts by mountPath, args are appended
  and anything else the InferenceService gives replaces the runtime's.
- Placeholders: KServe runs the container through Go's text/template with the
  InferenceService's metadata. Here {{.Name}}, {{.Namespace}}, {{.Labels.KEY}} and
  {{.Annotations.KEY}}; anything else fails, naming it.
- The model at /mnt/models, read-only, in the volume kserve-provision-location. KServe fills it
  with its storage initializer (an init container that downloads storageUri) or mounts a
  pvc:// claim there. Here an emptyDir, or with --podman a hostPath to DIR that holds the model
  already: the storage initializer is not run.
- The pod's fields from the runtime (volumes, nodeSelector...) and from spec.predictor (its
  PodSpec fields: terminationGracePeriodSeconds, securityContext...), the runtime's
  spec.annotations and the InferenceService's annotations on the pod. Not made: the Knative
  queue-proxy sidecar, the Deployment or Knative Service around the pod, its Service and routes.

--podman changes, for the reasons kube-play.py gives for config/k8s (../shared/notes/DEPLOY.md):
- hostNetwork, and SERVE_CMD_ARGS="-b 127.0.0.1:PORT", which wins over the image's PORT=8080:
  test traffic stays on 127.0.0.1.
- the image (localhost/serve:ci), imagePullPolicy Never.
- ports removed: on the host network serve binds 127.0.0.1:PORT itself.
- readinessProbe removed (4.3.1 ignores it); livenessProbe becomes exec `serve --probe` with the
  same timings (an httpGet one runs curl inside the container, and the image has none).
"""

import argparse
import copy
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# KSERVE_DIR: another copy of the manifests (as K8S_DIR for kube-play.py).
KSERVE = os.environ.get("KSERVE_DIR") or os.path.join(ROOT, "config", "kserve")
RUNTIME = "runtime.yaml"
# KServe's constants (pkg/constants/constants.go).
CONTAINER = "kserve-container"
MODELS = "/mnt/models"
MODELS_VOLUME = "kserve-provision-location"
# spec.predictor.model's fields that say which model and runtime, not what the container is.
MODEL_ONLY = {"modelFormat", "runtime", "runtimeVersion", "protocolVersion", "storageUri", "storage"}
# spec.predictor's fields that are KServe's (ComponentExtensionSpec) or a framework's, not PodSpec's.
NOT_POD = {
    "model", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
    "annotations", "deploymentStrategy", "autoScaling", "storageUris", "storageContainerName",
    "workerSpec", "containers",
}
FRAMEWORKS = {"sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml",
              "lightgbm", "paddle", "huggingface"}
# Strategic merge keys of a Container's lists (k8s.io/api/core/v1 patchMergeKey).
MERGE_KEYS = {"ports": "containerPort", "env": "name", "volumeMounts": "mountPath",
              "volumeDevices": "devicePath", "resizePolicy": "resourceName"}
# The pod fields a ServingRuntime carries (ServingRuntimePodSpec, as KServe's MergePodSpec copies).
RUNTIME_POD = ("nodeSelector", "affinity", "tolerations", "volumes", "imagePullSecrets",
               "schedulerName", "hostIPC")


def fail(message):
    sys.exit(f"kserve-pod.py: {message}")


def load_one(path, kind):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        fail(f"{path}: expected one {kind}, found {len(found)}")
    return found[0]


def fill(value, meta, where):
    """Every string in value with KServe's placeholders replaced from meta."""
    if isinstance(value, dict):
        return {k: fill(v, meta, where) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, meta, where) for v in value]
    if not isinstance(value, str):
        return value

    def one(m):
        field, key = m.group(1), m.group(2)
        if field in ("Name", "Namespace") and key is None:
            return meta.get(field.lower(), "")
        if field in ("Labels", "Annotations") and key is not None:
            found = (meta.get(field.lower()) or {}).get(key)
            if found is not None:
                return found
        fail(f"{where}: {m.group(0)} is not a placeholder this script fills from the "
             "InferenceService's metadata")

    filled = re.sub(r"\{\{\s*\.(\w+)(?:\.([\w-]+))?\s*\}\}", one, value)
    if "{{" in filled:
        fail(f"{where}: {value!r} has a template this script does not read")
    return filled


def merge(base, patch):
    """A Container's strategic merge patch, as KServe's MergeRuntimeContainers does it."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if k == "args":
            out["args"] = list(base.get("args", [])) + list(v)
        elif k in MERGE_KEYS and isinstance(v, list):
            key = MERGE_KEYS[k]
            items = [copy.deepcopy(x) for x in base.get(k, [])]
            for item in v:
                same = [i for i, x in enumerate(items) if x.get(key) == item.get(key)]
                if same:
                    items[same[0]] = merge(items[same[0]], item)
                else:
                    items.append(copy.deepcopy(item))
            out[k] = items
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            out[k] = merge(base[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def make_pod(runtime, isvc, isvc_path):
    """The pod KServe makes for isvc on runtime (see the module's doc)."""
    meta = isvc.get("metadata") or {}
    name = meta.get("name") or fail(f"{isvc_path}: the InferenceService has no name")
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") or fail(f"{isvc_path}: no spec.predictor.model")
    for k in predictor:
        if k in FRAMEWORKS:
            fail(f"{isvc_path}: spec.predictor.{k}: this script makes the pod of a predictor's "
                 "model (spec.predictor.model) only")
    wanted = model.get("runtime")
    if wanted != runtime["metadata"]["name"]:
        fail(f"{isvc_path}: runtime {wanted!r} is not {RUNTIME}'s {runtime['metadata']['name']!r}")
    rspec = runtime["spec"]
    containers = [c for c in rspec.get("containers", []) if c.get("name") == CONTAINER]
    if len(containers) != 1:
        fail(f"{RUNTIME}: expected one container named {CONTAINER} (the one KServe merges the "
             f"model into), found {len(containers)}")
    patch = {k: v for k, v in model.items() if k not in MODEL_ONLY and k != "name"}
    container = fill(merge(containers[0], patch), meta, f"{RUNTIME} with {isvc_path}")
    container["name"] = CONTAINER
    mounts = [m for m in container.get("volumeMounts", []) if m.get("mountPath") != MODELS]
    container["volumeMounts"] = mounts + [
        {"name": MODELS_VOLUME, "mountPath": MODELS, "readOnly": True}
    ]

    spec = {k: copy.deepcopy(rspec[k]) for k in RUNTIME_POD if k in rspec}
    spec.update({k: copy.deepcopy(v) for k, v in predictor.items() if k not in NOT_POD})
    spec["containers"] = [container]
    spec["volumes"] = spec.get("volumes", []) + [{"name": MODELS_VOLUME, "emptyDir": {}}]
    annotations = {**(rspec.get("annotations") or {}), **(meta.get("annotations") or {})}
    pod_meta = {
        "name": f"{name}-predictor",
        "labels": {"serving.kserve.io/inferenceservice": name, "component": "predictor"},
    }
    if meta.get("namespace"):
        pod_meta["namespace"] = meta["namespace"]
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def for_podman(pod, port, models, image):
    """The pod as podman kube play 4.3.1 runs it here (see the module's doc)."""
    p = copy.deepcopy(pod)
    spec = p["spec"]
    spec["hostNetwork"] = True
    c = spec["containers"][0]
    c["image"] = image
    c["imagePullPolicy"] = "Never"
    env = [e for e in c.get("env", []) if e.get("name") != "SERVE_CMD_ARGS"]
    c["env"] = env + [{"name": "SERVE_CMD_ARGS", "value": f"-b 127.0.0.1:{port}"}]
    c.pop("ports", None)
    c.pop("readinessProbe", None)
    live = c.get("livenessProbe")
    if live is not None:
        timings = ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
        c["livenessProbe"] = {
            "exec": {"command": ["/usr/local/bin/serve", "--probe"]},
            **{k: v for k, v in live.items() if k in timings},
        }
    for v in spec["volumes"]:
        if v["name"] == MODELS_VOLUME:
            v.pop("emptyDir", None)
            v["hostPath"] = {"path": models, "type": "Directory"}
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the YAML file to write")
    ap.add_argument("isvc", help="an InferenceService of config/kserve")
    ap.add_argument("--podman", type=int, metavar="PORT",
                    help="write the pod for podman kube play, serving on 127.0.0.1:PORT")
    ap.add_argument("--models", help="with --podman: the host directory mounted at /mnt/models")
    ap.add_argument("--image", default="localhost/serve:ci")
    a = ap.parse_args()
    runtime = load_one(os.path.join(KSERVE, RUNTIME), "ClusterServingRuntime")
    isvc = load_one(a.isvc, "InferenceService")
    pod = make_pod(runtime, isvc, a.isvc)
    header = (f"# Written by .ci/deploy/kserve-pod.py: the pod KServe makes of {RUNTIME} and\n"
              f"# {os.path.basename(a.isvc)} (the model at {MODELS} in an emptyDir).\n")
    if a.podman is not None:
        if not 0 < a.podman < 65536:
            fail(f"port {a.podman} is not a TCP port")
        if not a.models or not os.path.isdir(a.models):
            fail(f"--models {a.models!r}: not a directory")
        pod = for_podman(pod, a.podman, os.path.abspath(a.models), a.image)
        header = (f"# Written by .ci/deploy/kserve-pod.py: the pod KServe makes of {RUNTIME} and\n"
                  f"# {os.path.basename(a.isvc)}, for `podman kube play` (4.3.1): host network on\n"
                  f"# 127.0.0.1:{a.podman}, image {a.image}, {MODELS} from {a.models},\n"
                  "# liveness as `serve --probe`. See the script for why.\n")
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(header)
        yaml.safe_dump(pod, f, sort_keys=False, default_flow_style=False)


if __name__ == "__main__":
    main()
