"""Start the real serve binary on 127.0.0.1:0 and stop it: the helper every web check uses.

The log is read on a thread for the server's whole life (a full stderr pipe would block
the master), and the address comes from its "Listening at:" line.
"""

import re
import signal
import subprocess
import threading
import time


class Server:
    """A running serve: `base` is its URL, `pid` the master's pid, `log` its lines so far."""

    def __init__(self, binary, *args, workers=2):
        self.proc = subprocess.Popen(
            [binary, "-w", str(workers), "-b", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self.log = []
        self.base = None
        booted = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"Listening at: (http://[0-9.:]+) ", line)
                if m:
                    self.base = m.group(1)
                if "workers booted" in line:
                    booted.set()
            booted.set()

        threading.Thread(target=pump, daemon=True).start()
        if not booted.wait(60) or self.base is None or self.proc.poll() is not None:
            self.proc.kill()
            raise SystemExit("serve did not boot:\n" + "".join(self.log))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        if code != 0:
            raise SystemExit(f"serve exited {code}:\n" + "".join(self.log[-20:]))

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        if kind is None:
            self.stop()
        else:
            self.proc.kill()
            self.proc.wait()


def wait_until(cond, within=30.0):
    """Polls `cond` every 50 ms until it holds or `within` seconds pass."""
    deadline = time.time() + within
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False
