"""Writes config/k8s's ConfigMap and Deployment as one YAML that `podman kube play` 4.3.1 runs.

    "$TOOLS/bin/python" .ci/deploy/kube-play.py OUT.yaml PORT [--image localhost/serve:ci]
    podman kube play --network host OUT.yaml
    ...
    podman pod stop -t 30 serve-pod-0 serve-pod-1   # kube down alone sends SIGKILL in 4.3.1
    podman kube down OUT.yaml
    podman volume rm serve-config    # the ConfigMap's volume; kube down 4.3.1 leaves it

Run it with the tools venv's Python ("$TOOLS/bin/python", set by .ci/deploy/lib.sh): it has
PyYAML (kubernetes-validate needs it). The manifests are read, never copied by hand, so the
overlay follows every edit of config/k8s. What changes, and why (../shared/notes/DEPLOY.md has
the facts about podman 4.3.1):

- hostNetwork: true. Test traffic stays on 127.0.0.1; nothing goes to podman's bridge.
- SERVE_CMD_ARGS="-b 127.0.0.1:PORT --reuse-port": it wins over the ConfigMap's bind (:8080).
  podman 4.3.1 honours replicas: 2 (pods serve-pod-0 and serve-pod-1) and gives both the same
  environment on the same host network, so both bind the same address with SO_REUSEPORT and
  the kernel spreads connections between them.
- image localhost/serve:ci, imagePullPolicy Never: the image built locally, no registry.
- ports removed: on the host network serve binds 127.0.0.1:PORT itself, and podman publishes
  only hostPort, which two replicas would fight over.
- lifecycle.preStop removed: podman 4.3.1 has no preStop, and its Kubernetes types predate the
  `sleep` action (Kubernetes 1.30). `podman pod stop -t N` sends SIGTERM directly.
- livenessProbe becomes exec `serve --probe` (same timings): 4.3.1 turns only the liveness probe
  into a healthcheck, and an httpGet one runs curl inside the container on the named port
  (8080, where nothing listens here). `serve --probe` reads the same SERVE_CMD_ARGS and asks
  127.0.0.1:PORT, with no curl in the image. `podman healthcheck run serve-pod-0-serve` runs it.
- startupProbe and readinessProbe removed: 4.3.1 ignores them (they are validated only).
Everything else (the ConfigMap mounted at /etc/serve, securityContext, resources, replicas)
is kept as it is.
"""

import argparse
import copy
import os
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# K8S_DIR: another copy of the manifests (as for k8s-validate.sh).
K8S = os.environ.get("K8S_DIR") or os.path.join(ROOT, "config", "k8s")


def load_one(name, kind):
    path = os.path.join(K8S, name)
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        sys.exit(f"kube-play.py: {path}: expected one {kind}, found {len(found)}")
    return found[0]


def overlay(deployment, port, image):
    d = copy.deepcopy(deployment)
    pod = d["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    containers = pod["containers"]
    serve = [c for c in containers if c.get("name") == "serve"]
    if len(serve) != 1:
        sys.exit("kube-play.py: deployment.yaml: expected one container named serve")
    c = serve[0]
    c["image"] = image
    c["imagePullPolicy"] = "Never"
    env = [e for e in c.get("env", []) if e.get("name") != "SERVE_CMD_ARGS"]
    env.append(
        {"name": "SERVE_CMD_ARGS", "value": f"-b 127.0.0.1:{port} --reuse-port"}
    )
    c["env"] = env
    c.pop("ports", None)
    c.pop("lifecycle", None)
    c.pop("startupProbe", None)
    c.pop("readinessProbe", None)
    live = c.get("livenessProbe")
    if live is not None:
        timings = {
            k: v
            for k, v in live.items()
            if k
            in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
        }
        c["livenessProbe"] = {
            "exec": {
                "command": [
                    "/usr/local/bin/serve",
                    "--probe",
                    "-c",
                    "/etc/serve/serve.toml",
                ]
            },
            **timings,
        }
    return d


class Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the ConfigMap's serve.toml) as literal blocks, as written."""


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _str)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the YAML file to write")
    ap.add_argument("port", type=int, help="the 127.0.0.1 port both replicas bind")
    ap.add_argument("--image", default="localhost/serve:ci")
    a = ap.parse_args()
    if not 0 < a.port < 65536:
        sys.exit(f"kube-play.py: port {a.port} is not a TCP port")
    configmap = load_one("configmap.yaml", "ConfigMap")
    deployment = overlay(load_one("deployment.yaml", "Deployment"), a.port, a.image)
    header = (
        "# Written by .ci/deploy/kube-play.py from config/k8s/configmap.yaml and\n"
        "# deployment.yaml for `podman kube play --network host` (podman 4.3.1): host network,\n"
        f"# both replicas on 127.0.0.1:{a.port} with --reuse-port, image {a.image}, no preStop\n"
        "# (4.3.1 has none), liveness as `serve --probe`. See the script for why.\n"
    )
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(header)
        yaml.dump_all(
            [configmap, deployment],
            f,
            Dumper=Dumper,
            sort_keys=False,
            default_flow_style=False,
        )


if __name__ == "__main__":
    main()
