"""The Kubernetes manifests run for real with `podman kube play` (the Deployment with its two
replicas and the ConfigMap mounted as /etc/serve), through the test overlay that
.ci/deploy/kube-play.py writes: host network on 127.0.0.1, the local image. podman 4.3 runs no
readiness probes and skips Services, so this test checks readiness itself; its
`kube down` kills at once, so the pods are stopped with `podman pod stop -t N` first, as
Kubernetes stops a pod: TERM, then the grace period.

Run by .ci/suites/deploy.sh: python3 tests/deploy/test_kube.py
"""

import json
import os
import subprocess
import tempfile
import time

from common import ROOT, V2_BODY, V2_PATH, Load, check, free_port, podman, request, wait_ready

TOOLS = os.environ.get("TOOLS", os.path.join(ROOT, "target", "ci-tools"))


def main():
    port = free_port()
    out = os.path.join(tempfile.mkdtemp(prefix="serve-kube-"), "play.yaml")
    subprocess.run(
        [os.path.join(TOOLS, "bin", "python"), os.path.join(ROOT, ".ci", "deploy", "kube-play.py"), out, str(port)],
        check=True,
    )
    podman("kube", "down", out, check_rc=False)
    try:
        podman("kube", "play", out, timeout=180)
        pods = [p for p in podman("pod", "ps", "--format", "{{.Name}}").stdout.split() if p.startswith("serve-pod")]
        check(len(pods) == 2, f"the Deployment's 2 replicas run as pods: {pods}")
        check(wait_ready(port), "the pods answer /v2/health/ready on 127.0.0.1")

        containers = [
            c
            for c in podman("ps", "--format", "{{.Names}}").stdout.split()
            if c.startswith("serve-pod") and not c.endswith("-infra")
        ]
        check(len(containers) == 2, f"one serve container per pod: {containers}")
        for c in containers:
            conf = podman("exec", c, "cat", "/etc/serve/serve.toml").stdout
            check("graceful_timeout" in conf, f"{c} reads serve.toml from the ConfigMap")
            user = podman("exec", c, "id", "-u").stdout.strip()
            check(user == "10001", f"{c} runs as the non-root user 10001 (got {user})")
            ro = podman("exec", c, "sh", "-c", "touch /x 2>&1 || echo read-only", check_rc=False).stdout
            check("read-only" in ro.lower(), f"{c}'s root filesystem is read-only")

        # Both replicas take requests: each binds 127.0.0.1:PORT with SO_REUSEPORT and the
        # kernel spreads new connections by a hash of their ports, so 40 new connections all
        # reaching one pod would happen once in 2^39 runs. The ConfigMap's access log goes to
        # the container's stdout.
        statuses = [request(port, "POST", V2_PATH, V2_BODY)[0] for _ in range(40)]
        check(statuses == [200] * 40, f"40 inferences on new connections: {set(statuses)}")
        time.sleep(1)
        for c in containers:
            logs = podman("logs", c).stdout + podman("logs", c).stderr
            check(V2_PATH in logs, f"{c} answered requests (its access log)")

        # The pods stop as Kubernetes stops them, under load. Kubernetes first takes a pod out
        # of the Service's endpoints (and the Deployment's preStop sleep covers the time the
        # proxies take to notice), so new connections go to other pods; the open keep-alive
        # connections go on sending until serve closes them. Here both pods share one address
        # and no Service stands in front, so the clients stop opening connections instead. (A
        # client connecting to a stopping serve at the very moment its socket closes can be
        # reset: see ARCHITECTURE.md, "Stopping".)
        load = Load(port, conns=4)
        check(load.wait_for(100), "the load flows to the pods")
        load.stop_connecting()
        start = time.time()
        podman("pod", "stop", "-t", "30", *pods, timeout=90)
        took = time.time() - start
        check(load.wait_ended(), "serve closed every keep-alive connection as it drained")
        load.stop()
        check(load.failed == 0, f"stopping the pods under load loses no accepted request: {load.summary()}")
        for c in containers:
            code = podman("inspect", c, "--format", "{{.State.ExitCode}}").stdout.strip()
            check(code == "0", f"{c} exited 0 (got {code})")
        print(f"   pods stopped in {took:.2f} s; {load.ok} requests answered, none failed", flush=True)
    finally:
        podman("kube", "down", out, check_rc=False)
        # kube down leaves the ConfigMap's volume behind.
        podman("volume", "rm", "-f", "serve-config", check_rc=False)


if __name__ == "__main__":
    main()
