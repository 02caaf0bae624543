"""A rolling update with real parts: two serve containers behind haproxy, health-checked on
/v2/health/ready, replaced one after the other by containers of a new image whose model has a
new version, as a Kubernetes rolling update does (take the pod out of the endpoints, stop it,
start its replacement, wait for it to be ready), under a steady keep-alive load through haproxy.

Run by .ci/deploy/deploy.sh after the image is built: python3 tests/deploy/test_rolling.py
"""

import os
import socket
import subprocess
import tempfile
import time

from common import IMAGE, Load, check, free_port, podman, run_container, wait_ready

NEW_IMAGE = IMAGE + "-v2"

HAPROXY = """
global
    stats socket {sock} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A request a server closed without answering (a keep-alive connection it was closing)
    # or could not connect to is sent again, to the other server if need be.
    retries 3
    option redispatch
    retry-on conn-failure empty-response
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2
    server s1 127.0.0.1:{p1} check
    server s2 127.0.0.1:{p2} check
"""


def build_new_image(tmp):
    """The same image with the iris model at version 2: what a new release would ship."""
    app = podman("run", "--rm", "--entrypoint", "cat", IMAGE, "/srv/app/app.toml").stdout
    old = 'name = "iris"\npath = "iris/model.onnx"\nversion = 1'
    check(old in app, "the image's app.toml declares iris at version 1")
    with open(os.path.join(tmp, "app.toml"), "w") as f:
        f.write(app.replace(old, old[:-1] + "2"))
    with open(os.path.join(tmp, "Containerfile"), "w") as f:
        f.write(f"FROM {IMAGE}\nCOPY app.toml /srv/app/app.toml\n")
    podman("build", "--format", "docker", "-q", "-t", NEW_IMAGE, tmp)


def admin(sock, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    return out.decode()


def server_state(sock, name):
    """haproxy's operational state of a server (2 = up) from `show servers state`."""
    for line in admin(sock, "show servers state be").splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[3] == name:
            return int(fields[5])
    return None


def wait_up(sock, name, within=30):
    deadline = time.time() + within
    while time.time() < deadline:
        if server_state(sock, name) == 2:
            return True
        time.sleep(0.1)
    return False


def main():
    tmp = tempfile.mkdtemp(prefix="serve-rolling-")
    build_new_image(tmp)
    front, p1, p2 = free_port(), free_port(), free_port()
    names = {"s1": ("serve-ci-s1", p1), "s2": ("serve-ci-s2", p2)}
    sock = os.path.join(tmp, "admin.sock")
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY.format(sock=sock, front=front, p1=p1, p2=p2))
    haproxy = None
    try:
        for name, port in names.values():
            run_container(name, port)
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        check(wait_ready(front), "haproxy answers through both servers")
        check(wait_up(sock, "s1") and wait_up(sock, "s2"), "both servers pass haproxy's health check")

        load = Load(front, conns=8)
        check(load.wait_for(100), "the load flows through haproxy")
        for server, (name, port) in names.items():
            # Out of the endpoints first (Kubernetes does this before it stops a pod)...
            admin(sock, f"set server be/{server} state drain")
            time.sleep(0.5)
            # ...then TERM: in-flight requests finish, then the old container exits.
            podman("stop", "-t", "10", name, timeout=60)
            code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
            check(code == "0", f"{name} (old) exited 0")
            podman("rm", "-f", name)
            run_container(name, port, image=NEW_IMAGE)
            admin(sock, f"set server be/{server} state ready")
            check(wait_up(sock, server), f"{name} (new) passes the health check and takes traffic")
            check(load.wait_for(100), f"the load flows after replacing {name}")
        load.stop()

        check(load.failed == 0 and load.refused == 0, f"rolling update under load: {load.summary()}")
        versions = [v for _, v in load.versions]
        check(versions[0] == "1", f"the first answers came from version 1: {versions[:3]}")
        check(set(versions[-50:]) == {"2"}, f"the last answers came from version 2: {versions[-5:]}")
        switched = next(i for i, v in enumerate(versions) if v == "2")
        print(f"   {load.ok} requests through haproxy, 0 failed; version 2 answered from request {switched}", flush=True)
    finally:
        if haproxy:
            haproxy.terminate()
            haproxy.wait(timeout=10)
        for name, _ in names.values():
            podman("rm", "-f", "-t", "0", name, check_rc=False)


if __name__ == "__main__":
    main()
