"""The image built from Dockerfile.onnxruntime (the default image plus onnxruntime's library,
taken out of PyPI's wheel), run with podman as a user runs it: the tutorials' models on
onnxruntime, loaded by the workers and never by the master (PID 1), HUP under load.

Run by .ci/suites/deploy.sh after the image is built:
    python3 tests/deploy/test_container_onnxruntime.py
"""

import json
import os
import time

from common import (IMAGE, IRIS, TITANIC, Load, check, container_log, expected, free_port, podman,
                    request, run_container)

ORT_IMAGE = os.environ.get("SERVE_ORT_IMAGE", IMAGE + "-onnxruntime")
NAME = "serve-ci-container-onnxruntime"


def maps_onnxruntime(pid):
    maps = podman("exec", NAME, "cat", f"/proc/{pid}/maps", check_rc=False).stdout
    return "libonnxruntime" in maps


def main():
    config = json.loads(podman("image", "inspect", ORT_IMAGE).stdout)[0]["Config"]
    env = config.get("Env", [])
    check("ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so" in env, f"ORT_DYLIB_PATH set: {env}")
    check(config.get("User") == "10001:10001", f"the default image's user: {config.get('User')}")

    port = free_port()
    # The default image's command, every model on onnxruntime.
    run_container(NAME, port, image=ORT_IMAGE,
                  args=("-c", "/etc/serve/serve.toml", "--engine", "onnxruntime", "/srv/app/app.toml"))
    try:
        status, body = request(port, "GET", "/v2/models/titanic")
        check(status == 200 and body.get("parameters", {}).get("engine") == "onnxruntime",
              f"titanic runs on onnxruntime: {body}")
        status, body = request(port, "POST", IRIS[0], IRIS[1])
        want = expected("iris", "setosa")
        check(status == 200 and body["species"] == want["label"]["data"][0], f"iris /predict: {status} {body}")
        status, body = request(port, "POST", TITANIC[0], TITANIC[1])
        want = expected("titanic", "tutorial_male_3rd")["predict"]["data"][0]
        check(status == 200 and abs(body["predict"] - want) < 1e-5, f"titanic /model: {status} {body}")

        # Every worker loads the library on its first request; the master (PID 1) never does.
        load = Load(port, conns=4)
        check(load.wait_for(100), "the load flows")
        children = podman("exec", NAME, "cat", "/proc/1/task/1/children").stdout.split()
        deadline = time.time() + 30
        while time.time() < deadline and not all(maps_onnxruntime(p) for p in children):
            time.sleep(0.2)
        check(children and all(maps_onnxruntime(p) for p in children),
              f"the workers {children} loaded libonnxruntime")
        check(not maps_onnxruntime(1), "the master (PID 1) never loads libonnxruntime")

        podman("kill", "-s", "HUP", NAME)
        deadline = time.time() + 60
        while time.time() < deadline and "Reload complete" not in container_log(NAME):
            time.sleep(0.2)
        check("Reload complete" in container_log(NAME), "the new generation serves after HUP")
        check(load.wait_for(200), "the load flows after HUP")
        load.stop()
        check(load.failed == 0 and load.refused == 0, f"HUP under load on onnxruntime: {load.summary()}")
        check(not maps_onnxruntime(1), "the master still has not loaded it (a child proved the reload)")
    finally:
        podman("rm", "-f", "-t", "0", NAME, check_rc=False)

    size = json.loads(podman("image", "inspect", ORT_IMAGE).stdout)[0]["Size"]
    base = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Size"]
    print(f"   image {ORT_IMAGE}: {size / 1e6:.1f} MB, {(size - base) / 1e6:.1f} MB over the default image",
          flush=True)


if __name__ == "__main__":
    main()
