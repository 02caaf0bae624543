#!/usr/bin/env bash
# Proves config/systemd against a real serve binary, without systemd as PID 1:
#
#   bash .ci/deploy/systemd.sh target/debug/serve
#
# (a) `systemd-analyze verify` on serve.service and serve.socket, as shipped and with
#     serve.service's optional `Requires=serve.socket` / `After=serve.socket` uncommented, in a
#     temp copy whose ExecStart names BINARY. verify exits 0 on warnings (an unknown key, a
#     socket naming a missing service), so any line it prints about the units fails here.
#     User=serve stays as shipped: systemd-analyze 252 does not resolve User= (checked: no
#     warning on a machine without that user), and creating a system user on the CI machine
#     would prove nothing about the unit. A real install needs the user (serve.service says how).
# (b) Socket activation for real: systemd-socket-activate binds 127.0.0.1:PORT, waits for the
#     first connection and execs serve in place with fd 3, LISTEN_FDS=1 and LISTEN_PID (its
#     environment cut to TERM, PATH, USER, HOME and the -E variables). serve runs with the
#     unit's own ExecStart arguments (-c CONFIG), CONFIG binding the socket's address as
#     serve.service documents (bind = ListenStream), with 2 workers. Checked: the log line
#     "Using 1 sockets passed by systemd (LISTEN_FDS)", GET /v2/health/ready 200, an inference
#     on the embedded iris model, a reload (HUP) that completes and keeps the passed socket
#     (both still answered there), and a graceful stop (TERM) that exits 0.
# (c) The notification sequence of Type=notify: a datagram socket as NOTIFY_SOCKET; serve
#     started, READY=1 (with MAINPID), HUP -> RELOADING=1 then READY=1, TERM -> STOPPING=1,
#     exit code 0.
# Every wait is bounded; every process started here is killed on exit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SERVE=$(serve_arg "$@")
UNITS=${UNITS_DIR:-$ROOT/config/systemd}
for tool in systemd-analyze systemd-socket-activate curl python3; do
    command -v "$tool" >/dev/null || fail "$tool is missing: run .ci/deploy/setup.sh"
done

work=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    # The master's workers follow it (they exit when their parent does); wait for the ones
    # started here, by pid only.
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------------------------
echo "== (a) systemd-analyze verify"
verify() { # DIR LABEL
    local dir=$1 label=$2 out rc=0
    out=$(cd "$dir" && systemd-analyze verify ./serve.service ./serve.socket 2>&1) || rc=$?
    if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -q -e 'serve\.service' -e 'serve\.socket' -e "$dir"; then
        printf '%s\n' "$out" >&2
        fail "systemd-analyze verify ($label): exit $rc, or warnings about the units (above)"
    fi
    [ -z "$out" ] || printf '  note (not about the units): %s\n' "$out"
    echo "  ok $label"
}
for v in plain socket; do
    mkdir "$work/$v"
    cp "$UNITS/serve.service" "$UNITS/serve.socket" "$work/$v/"
    grep -q '^ExecStart=/usr/local/bin/serve ' "$work/$v/serve.service" ||
        fail "serve.service: no ExecStart=/usr/local/bin/serve line to point at $SERVE"
    sed -i "s|^ExecStart=/usr/local/bin/serve |ExecStart=$SERVE |" "$work/$v/serve.service"
done
sed -i 's|^#Requires=serve.socket$|Requires=serve.socket|; s|^#After=serve.socket$|After=serve.socket|' \
    "$work/socket/serve.service"
grep -q '^Requires=serve.socket$' "$work/socket/serve.service" ||
    fail "serve.service: no '#Requires=serve.socket' line to uncomment"
verify "$work/plain" "serve.service as shipped + serve.socket"
verify "$work/socket" "serve.service with Requires=serve.socket + serve.socket"

# The facts the units state, checked against each other.
unit_value() { sed -n "s/^$2=//p" "$UNITS/$1" | tail -n 1; }
[ "$(unit_value serve.service Type)" = notify ] || fail "serve.service: Type is not notify"
[ "$(unit_value serve.service ExecReload)" = '/bin/kill -HUP $MAINPID' ] ||
    fail "serve.service: ExecReload is not /bin/kill -HUP \$MAINPID"
stop=$(unit_value serve.service TimeoutStopSec)
graceful=$(env -u SERVE_CMD_ARGS "$SERVE" --print-config | sed -n 's/^graceful_timeout = //p')
python3 -c "import sys; sys.exit(not float('$stop') > float('$graceful'))" ||
    fail "serve.service: TimeoutStopSec=$stop is not above serve's graceful_timeout ($graceful)"
[ "$(unit_value serve.socket Service)" = serve.service ] || fail "serve.socket: Service is not serve.service"
backlog=$(env -u SERVE_CMD_ARGS "$SERVE" --print-config | sed -n 's/^backlog = //p')
[ "$(unit_value serve.socket Backlog)" = "$backlog" ] ||
    fail "serve.socket: Backlog is not serve's backlog ($backlog)"
echo "  ok TimeoutStopSec=$stop > graceful_timeout $graceful; Backlog=$backlog"

# ---------------------------------------------------------------------------------------------
echo "== (b) socket activation (systemd-socket-activate)"
port=$(free_port)
base="http://127.0.0.1:$port"
cat >"$work/serve.toml" <<EOF
# As serve.service documents for socket activation: bind is serve.socket's ListenStream.
bind = ["127.0.0.1:$port"]
workers = 2
graceful_timeout = 10
EOF
# The unit's ExecStart, with this binary and this config.
read -r -a exec_start <<<"$(unit_value serve.service ExecStart)"
[ "${exec_start[0]}" = /usr/local/bin/serve ] || fail "serve.service: ExecStart is not /usr/local/bin/serve ..."
exec_start[0]=$SERVE
for i in "${!exec_start[@]}"; do
    [ "${exec_start[$i]}" = /etc/serve/serve.toml ] && exec_start[$i]=$work/serve.toml
done
log=$work/activate.log
systemd-socket-activate -l "127.0.0.1:$port" -E RUST_BACKTRACE=1 "${exec_start[@]}" \
    >"$log" 2>&1 &
activate=$!
pids+=("$activate")
# systemd-socket-activate says so once it listens; serve is not started yet.
timeout 10 bash -c "until grep -q 'Listening on' '$log'; do sleep 0.1; done" || {
    cat "$log" >&2
    fail "systemd-socket-activate did not listen on 127.0.0.1:$port within 10 s"
}
# The first connection starts serve (exec in place: same pid); it waits in the backlog.
code=$(curl -s -o "$work/ready.json" -w '%{http_code}' --max-time 60 "$base/v2/health/ready") || true
[ "$code" = 200 ] || {
    cat "$log" >&2
    fail "GET /v2/health/ready under socket activation: HTTP '$code', expected 200"
}
grep -q 'Using 1 sockets passed by systemd (LISTEN_FDS)' "$log" || {
    cat "$log" >&2
    fail "serve did not log that it uses the socket passed by systemd"
}
grep -q 'Listening at' "$log" && ! grep 'Listening at' "$log" | grep -qv "127.0.0.1:$port" || {
    cat "$log" >&2
    fail "serve listens somewhere else than the passed socket 127.0.0.1:$port"
}
echo "  ok GET /v2/health/ready 200 $(cat "$work/ready.json"); log: Using 1 sockets passed by systemd (LISTEN_FDS)"
infer() {
    curl -s -w '\n%{http_code}' --max-time 10 "$base/v2/models/iris/infer" \
        -H 'Content-Type: application/json' \
        -d '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
}
check_infer() { # LABEL
    local out
    out=$(infer) || true
    [ "$(printf '%s\n' "$out" | tail -n 1)" = 200 ] &&
        printf '%s\n' "$out" | head -n 1 | grep -q '"model_name":"iris"' || {
        printf '%s\n' "$out" >&2
        cat "$log" >&2
        fail "POST /v2/models/iris/infer ($1) did not answer 200 with iris's outputs"
    }
    echo "  ok POST /v2/models/iris/infer ($1): $(printf '%s\n' "$out" | head -n 1 | cut -c1-110)..."
}
check_infer "socket activation"
[ "$(ps -o comm= -p "$activate" 2>/dev/null)" != systemd-socket- ] ||
    fail "systemd-socket-activate did not exec serve in place"
# systemctl reload: the new generation must serve on the socket systemd passed.
timeout 30 bash -c "until grep -q 'workers booted' '$log'; do sleep 0.1; done" ||
    fail "serve did not log that its workers booted within 30 s"
kill -HUP "$activate"
timeout 30 bash -c "until grep -q -e 'Reload complete' -e 'Reload failed' -e 'Reload abandoned' '$log'; do sleep 0.1; done" || {
    cat "$log" >&2
    fail "the reload (HUP) under socket activation did not end within 30 s"
}
grep -q 'Reload complete' "$log" || {
    cat "$log" >&2
    fail "the reload (HUP) under socket activation did not complete (see the log above)"
}
echo "  ok HUP: reload complete on the passed socket"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/v2/health/ready") || true
[ "$code" = 200 ] || {
    cat "$log" >&2
    fail "after a HUP, GET /v2/health/ready on the passed socket: HTTP '$code', expected 200"
}
check_infer "after a HUP, same socket"
kill -TERM "$activate"
rc=0
timeout 30 tail --pid="$activate" -f /dev/null || fail "serve did not stop within 30 s of TERM"
wait "$activate" || rc=$?
[ $rc -eq 0 ] || {
    cat "$log" >&2
    fail "serve (socket-activated) exited $rc on TERM, expected 0"
}
echo "  ok TERM: exit 0"

# ---------------------------------------------------------------------------------------------
echo "== (c) sd_notify: READY=1, HUP -> RELOADING=1 then READY=1, TERM -> STOPPING=1, exit 0"
port=$(free_port)
timeout 90 python3 - "$SERVE" "$port" "$work" <<'EOF' || fail "the notification sequence (above)"
import os, signal, socket, subprocess, sys, time

serve, port, work = sys.argv[1], sys.argv[2], sys.argv[3]
# timeout(1) ends this script with TERM: run the finally below, which kills serve.
signal.signal(signal.SIGTERM, lambda *_: sys.exit("systemd: FAIL: timed out"))
path = os.path.join(work, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.settimeout(30)
env = {k: v for k, v in os.environ.items()
       if k not in ("SERVE_CMD_ARGS", "PORT", "WEB_CONCURRENCY", "LISTEN_FDS", "LISTEN_PID")}
env["NOTIFY_SOCKET"] = path
log = open(os.path.join(work, "notify.log"), "w")
proc = subprocess.Popen([serve, "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "10"],
                        env=env, stdout=log, stderr=subprocess.STDOUT)
got = []

def fail(msg):
    sys.stderr.write(open(os.path.join(work, "notify.log")).read())
    sys.exit(f"systemd: FAIL: {msg}; datagrams so far: {got!r}")

def expect(prefix):
    try:
        msg = sock.recv(4096).decode()
    except socket.timeout:
        fail(f"no datagram within 30 s, expected {prefix!r}")
    got.append(msg)
    if not msg.startswith(prefix):
        fail(f"got {msg!r}, expected {prefix!r}")
    print(f"  ok {msg!r}")
    return msg

try:
    ready = expect("READY=1\n")
    if f"MAINPID={proc.pid}" not in ready.split("\n"):
        fail(f"READY=1 without MAINPID={proc.pid}")
    proc.send_signal(signal.SIGHUP)
    expect("RELOADING=1")
    reloaded = expect("READY=1")
    if "reload failed" in reloaded or "abandoned" in reloaded:
        fail("the reload was not a success")
    proc.send_signal(signal.SIGTERM)
    expect("STOPPING=1")
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail("serve did not exit within 30 s of TERM")
    if code != 0:
        fail(f"serve exited {code} on TERM, expected 0")
    print("  ok exit code 0")
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
EOF

echo "systemd: units verified, socket activation and notifications proven against $SERVE"
