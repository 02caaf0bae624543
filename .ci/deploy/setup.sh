#!/usr/bin/env bash
# What the deploy suite needs on a fresh Debian 12 machine: podman (rootful, runc, cgroupfs, as
# ../shared/notes/DEPLOY.md found works here), haproxy, debootstrap, systemd's tools, and a venv
# with maturin, ziglang, kubernetes-validate, jsonschema and the clients suite's tritonclient
# (.ci/deploy/requirements.txt). Idempotent: a second run changes nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need=()
for cmd in podman:podman runc:runc haproxy:haproxy debootstrap:debootstrap \
    systemd-socket-activate:systemd systemd-analyze:systemd curl:curl file:file socat:socat; do
    command -v "${cmd%%:*}" >/dev/null || need+=("${cmd#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # With podman's recommends: catatonit (the pods' infra containers), the network plugins.
    apt-get install -y -q "${need[@]}"
fi

# No systemd as PID 1 and no cgroup delegation here: runc with cgroupfs, and no default
# ulimits (podman's default nofile cannot be set inside this machine's own limits).
conf=/etc/containers/containers.conf
if ! grep -q '^# serve CI' "$conf" 2>/dev/null; then
    cat >>"$conf" <<'CONF'
# serve CI
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi

if [ ! -x "$TOOLS/bin/maturin" ]; then
    python3 -m venv "$TOOLS"
fi
"$TOOLS/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/.ci/deploy/requirements.txt"
