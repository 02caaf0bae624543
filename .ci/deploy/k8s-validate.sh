#!/usr/bin/env bash
# Validates config/k8s offline: no cluster, no network.
#
#   bash .ci/deploy/k8s-validate.sh target/debug/serve
#
# 1. Every manifest against the Kubernetes JSON schemas that kubernetes-validate ships
#    (installed in "$TOOLS" by .ci/deploy/setup.sh), --strict (an unknown or misspelt field
#    fails), for each version in K8S_VERSIONS: 1.30, the oldest this set supports (preStop's
#    `sleep` action), and 1.37, the newest the package ships. A missing schema (a misspelt
#    kind or apiVersion) is only a warning to kubernetes-validate: here it fails.
# 2. kustomization.yaml lists exactly the other manifests, and `kubectl kustomize` builds the
#    set (offline), whose output is validated too.
# 3. The ConfigMap's serve.toml is accepted by the serve binary given as $1
#    (`serve -c FILE --check-config APP`: every key known, every value parsed, the app's models
#    built), with the examples app the image serves.
# 4. The numbers that must agree: the bind port is the containerPort named http, and
#    terminationGracePeriodSeconds >= preStop sleep + graceful_timeout + 5 s.
# 5. .ci/deploy/kube-play.py's overlay for podman (what the container test plays) validates.
# Any problem: exit 1 with a line naming the file. K8S_DIR (default config/k8s) points the
# script at another copy of the manifests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SERVE=$(serve_arg "$@")
K8S_DIR=$(cd "${K8S_DIR:-$ROOT/config/k8s}" && pwd)
PY=$TOOLS/bin/python
[ -x "$PY" ] || fail "$PY is missing: run .ci/deploy/setup.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

manifests=()
for f in "$K8S_DIR"/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
[ ${#manifests[@]} -gt 0 ] || fail "$K8S_DIR: no manifests"

echo "== schemas (--strict, Kubernetes $K8S_VERSIONS)"
for f in "${manifests[@]}"; do
    k8s_validate "$f" "$(basename "$f")"
done

echo "== kustomization.yaml"
[ -f "$K8S_DIR/kustomization.yaml" ] || fail "$K8S_DIR/kustomization.yaml is missing"
"$PY" - "$K8S_DIR" <<'EOF' || fail "kustomization.yaml (see above)"
import os, sys, yaml
d = sys.argv[1]
k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
listed = sorted(k.get("resources") or [])
present = sorted(f for f in os.listdir(d) if f.endswith(".yaml") and f != "kustomization.yaml")
if k.get("kind") != "Kustomization" or listed != present:
    sys.exit(f"kustomization.yaml lists {listed}, the directory has {present}")
print(f"  ok resources: {' '.join(listed)}")
EOF
if command -v kubectl >/dev/null; then
    kubectl kustomize "$K8S_DIR" >"$work/kustomized.yaml" 2>"$work/kustomize.err" || {
        cat "$work/kustomize.err" >&2
        fail "kustomization.yaml: kubectl kustomize failed"
    }
    k8s_validate "$work/kustomized.yaml" "kubectl kustomize output"
else
    echo "  (kubectl absent: the kustomize build itself was not checked)"
fi

echo "== configmap.yaml's serve.toml against $SERVE"
"$PY" - "$K8S_DIR" "$work" <<'EOF' || fail "configmap.yaml or deployment.yaml (see above)"
import os, sys, yaml
d, work = sys.argv[1], sys.argv[2]
def one(name, kind):
    docs = [x for x in yaml.safe_load_all(open(os.path.join(d, name))) if x]
    found = [x for x in docs if x.get("kind") == kind]
    if len(found) != 1:
        sys.exit(f"{name}: expected one {kind}, found {len(found)}")
    return found[0]
cm = one("configmap.yaml", "ConfigMap")
toml = (cm.get("data") or {}).get("serve.toml")
if not toml:
    sys.exit("configmap.yaml: no serve.toml key in data")
open(os.path.join(work, "serve.toml"), "w").write(toml)
dep = one("deployment.yaml", "Deployment")
pod = dep["spec"]["template"]["spec"]
c = [x for x in pod["containers"] if x["name"] == "serve"]
if len(c) != 1:
    sys.exit("deployment.yaml: expected one container named serve")
c = c[0]
mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod.get("volumes", [])}
cm_vols = [n for n, v in vols.items()
           if (v.get("configMap") or {}).get("name") == cm["metadata"]["name"]]
if not any(mounts.get(n) == "/etc/serve" for n in cm_vols):
    sys.exit(f"deployment.yaml: ConfigMap {cm['metadata']['name']} is not mounted at /etc/serve")
http = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == "http"]
if len(http) != 1:
    sys.exit("deployment.yaml: expected one container port named http")
grace = pod.get("terminationGracePeriodSeconds", 30)
sleep = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
with open(os.path.join(work, "facts"), "w") as f:
    f.write(f"{http[0]} {grace} {sleep}\n")
EOF
read -r http_port grace prestop <"$work/facts"
app=$ROOT/examples/app.toml
[ -f "$app" ] || fail "$app is missing (the app the image serves)"
# Only the file speaks: none of the environment's serve settings.
check() {
    env -u SERVE_CMD_ARGS -u PORT -u WEB_CONCURRENCY -u LISTEN_FDS -u LISTEN_PID \
        "$SERVE" -c "$work/serve.toml" "$@"
}
if ! check --check-config "$app" >"$work/check.out" 2>&1; then
    cat "$work/check.out" >&2
    fail "configmap.yaml: serve.toml is refused by $SERVE --check-config (see above)"
fi
sed 's/^/  /' "$work/check.out" | tail -n 3
check --print-config "$app" >"$work/printed.toml" 2>"$work/print.err" || {
    cat "$work/print.err" >&2
    fail "configmap.yaml: $SERVE --print-config refused serve.toml"
}
"$PY" - "$work/printed.toml" "$http_port" "$grace" "$prestop" <<'EOF' ||
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
port, grace, prestop = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ports = {b.rsplit(":", 1)[-1] for b in cfg["bind"]}
if ports != {str(port)}:
    sys.exit(f"configmap.yaml binds {cfg['bind']}, deployment.yaml's port http is {port}")
gt = float(cfg["graceful_timeout"])
if grace < prestop + gt + 5:
    sys.exit(f"deployment.yaml: terminationGracePeriodSeconds {grace:g} < preStop {prestop:g}"
             f" + graceful_timeout {gt:g} (configmap.yaml) + 5 s margin")
print(f"  ok bind {cfg['bind']} = containerPort {port}; grace {grace:g} >= "
      f"{prestop:g} + {gt:g} + 5; log_format {cfg.get('log_format')}, "
      f"access_logfile {cfg.get('access_logfile')!r}")
EOF
    fail "configmap.yaml and deployment.yaml disagree (see above)"

echo "== the podman kube play overlay (.ci/deploy/kube-play.py)"
"$PY" "$ROOT/.ci/deploy/kube-play.py" "$work/kube-play.yaml" 18080 ||
    fail "kube-play.py could not write its overlay of configmap.yaml and deployment.yaml"
k8s_validate "$work/kube-play.yaml" "kube-play.py's overlay"

echo "k8s-validate: every manifest in $K8S_DIR is valid"
