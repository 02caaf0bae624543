"""The image built from the repository's Dockerfile, run with podman as a user runs it:
health check, both tutorials' calls, PID 1's reaping, HUP and stop under load.

Run by .ci/deploy/deploy.sh after the image is built: python3 tests/deploy/test_container.py
"""

import json
import time

from common import (IMAGE, IRIS, TITANIC, Load, check, container_log, expected, free_port, podman,
                    request, run_container)

NAME = "serve-ci-container"


def main():
    inspect = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    config = inspect["Config"]
    check(config.get("User") == "10001:10001", f"a numeric non-root user: {config.get('User')}")
    check(config.get("StopSignal") == "SIGTERM", "STOPSIGNAL SIGTERM")
    check("PORT=8080" in config.get("Env", []), "ENV PORT=8080")
    health = inspect.get("Healthcheck", {}).get("Test", [])
    check("--probe" in health, f"HEALTHCHECK runs serve --probe: {health}")

    port = free_port()
    run_container(NAME, port)
    try:
        # The health check, as podman runs it (the timers need systemd, which is absent).
        hc = podman("healthcheck", "run", NAME, check_rc=False)
        check(hc.returncode == 0, f"podman healthcheck run: healthy (exit {hc.returncode} {hc.stderr.strip()})")

        # The French tutorial's iris call and the Chinese one's titanic call, from the host.
        status, body = request(port, "POST", IRIS[0], IRIS[1])
        want = expected("iris", "setosa")
        check(status == 200 and body["species"] == want["label"]["data"][0], f"iris /predict: {status} {body}")
        status, body = request(port, "POST", TITANIC[0], TITANIC[1])
        want = expected("titanic", "tutorial_male_3rd")["predict"]["data"][0]
        check(status == 200 and abs(body["predict"] - want) < 1e-5, f"titanic /model: {status} {body}")
        status, body = request(port, "GET", "/v2/models/titanic")
        check(status == 200 and body.get("versions") == ["1"], f"titanic's version: {body}")

        # serve is PID 1: an orphan left by a command run in the container is reparented to it
        # and reaped. `sh` starts a 1 s sleep and exits; the sleep's parent becomes PID 1.
        pid = podman("exec", NAME, "sh", "-c", "sleep 1 & echo $!").stdout.strip()
        stat = podman("exec", NAME, "cat", f"/proc/{pid}/stat", check_rc=False).stdout.split()
        check(len(stat) > 3 and stat[3] == "1", f"the orphan {pid} is PID 1's child: {stat[:4]}")
        deadline, state = time.time() + 10, "?"
        while time.time() < deadline:
            p = podman("exec", NAME, "cat", f"/proc/{pid}/stat", check_rc=False)
            if p.returncode != 0:
                state = "reaped"
                break
            state = p.stdout.split()[2]
            time.sleep(0.2)
        check(state == "reaped", f"serve reaped the orphan once it exited (last state: {state})")

        # HUP under load: a new generation of workers, no request lost.
        load = Load(port, conns=4)
        check(load.wait_for(50), "the load flows")
        podman("kill", "-s", "HUP", NAME)
        deadline = time.time() + 30
        while time.time() < deadline and "Reload complete" not in container_log(NAME):
            time.sleep(0.2)
        check("Reload complete" in container_log(NAME), "the master logged the new generation serving")
        check(load.wait_for(200), "the load flows after HUP")
        load.stop()
        check(load.failed == 0 and load.refused == 0, f"HUP under load: {load.summary()}")
        print(f"   HUP under load: {load.ok} requests answered, none failed", flush=True)

        # podman stop under load: TERM, in-flight requests finish, keep-alive connections are
        # closed after their answer, exit 0 within the stop timeout. As behind a load balancer
        # that took the container out first, the clients open no new connection once the stop
        # starts (test_kube.py says why).
        load = Load(port, conns=4)
        check(load.wait_for(50), "the load flows before stop")
        answered_before = load.answered()
        load.stop_connecting()
        start = time.time()
        podman("stop", "-t", "10", NAME, timeout=60)
        took = time.time() - start
        check(load.wait_ended(), "serve closed every keep-alive connection as it drained")
        load.stop()
        code = podman("inspect", NAME, "--format", "{{.State.ExitCode}}").stdout.strip()
        check(code == "0", f"exit code 0 after podman stop (got {code})")
        check(took < 10, f"stopped inside the 10 s stop timeout: {took:.2f} s")
        check(load.failed == 0, f"stop under load loses no accepted request: {load.summary()}")
        print(f"   stop under load: {took:.2f} s, {load.ok - answered_before} answered during it", flush=True)
        check("Shutting down: Master" in container_log(NAME), "the master logged its shutdown")
    finally:
        podman("rm", "-f", "-t", "0", NAME, check_rc=False)

    base = json.loads(podman("image", "inspect", "localhost/debian:bookworm-minbase").stdout)[0]["Size"]
    added = (inspect["Size"] - base) / 1e6
    print(f"   image {IMAGE}: {inspect['Size'] / 1e6:.1f} MB, {added:.1f} MB over its base", flush=True)
    check(added <= 40, f"the image adds at most 40 MB to its base: {added:.1f} MB")


if __name__ == "__main__":
    main()
