# Shared by the deploy scripts: paths, and the environment of CI's one release build.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The tools venv (maturin, ziglang, kubernetes-validate, jsonschema, tritonclient: see
# requirements.txt). Under target/ so that the container build's context (which excludes
# target/) stays small, and the builder (which mounts the checkout) finds it at the same path.
TOOLS=${SERVE_CI_TOOLS:-$ROOT/target/ci-tools}
export TOOLS ROOT

# The one release build: the host's `cargo build --release`, `maturin build` and the container's
# builder stage all run cargo with exactly this environment, so that the dependencies compile
# once and the later two find them fresh. The target is named (the wheel's tag needs it), and
# zig links for glibc 2.17.
TRIPLE=x86_64-unknown-linux-gnu
export CARGO_BUILD_TARGET=$TRIPLE
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=$ROOT/.ci/deploy/zig/cc
export CC_x86_64_unknown_linux_gnu=$ROOT/.ci/deploy/zig/cc
export CXX_x86_64_unknown_linux_gnu=$ROOT/.ci/deploy/zig/c++
export AR_x86_64_unknown_linux_gnu=$ROOT/.ci/deploy/zig/ar
RELEASE_BIN=$ROOT/target/$TRIPLE/release/serve
export RELEASE_BIN
# The variables above, for the builder image's ENV.
RELEASE_ENV_NAMES="TOOLS CARGO_BUILD_TARGET CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER CC_x86_64_unknown_linux_gnu CXX_x86_64_unknown_linux_gnu AR_x86_64_unknown_linux_gnu"

# Exits with a message naming the script.
fail() {
    echo "$(basename "$0" .sh): FAIL: $*" >&2
    exit 1
}

# The absolute path of the serve binary given as the script's one argument: `SERVE=$(serve_arg "$@")`.
serve_arg() {
    [ $# -eq 1 ] || fail "usage: $0 SERVE_BINARY"
    [ -x "$1" ] || fail "$1: not an executable serve binary"
    echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

# Prints how long a command took, after it: `timed NAME CMD...`.
timed() {
    local name=$1 start=$SECONDS
    shift
    printf '\n-- %s\n' "$name"
    "$@"
    printf -- '-- %s: %ds\n' "$name" $((SECONDS - start))
}

# The Kubernetes versions manifests are validated against: 1.30, the oldest config/k8s supports
# (preStop's `sleep` action), and 1.37, the newest kubernetes-validate ships.
K8S_VERSIONS=${K8S_VERSIONS:-"1.30 1.37"}

# kubernetes-validate --strict on FILE for each of $K8S_VERSIONS, reported as NAME:
# `k8s_validate FILE NAME`. Its lines are "INFO FILE passed for resource ...", or WARN/ERROR
# lines; anything but INFO lines (a missing schema, a misspelt kind or apiVersion, is only a
# warning to it), a non-zero exit, or no "passed" line at all is a failure.
k8s_validate() {
    local file=$1 name=$2 kv=$TOOLS/bin/kubernetes-validate v out
    [ -x "$kv" ] || fail "$kv is missing: run .ci/deploy/setup.sh"
    for v in $K8S_VERSIONS; do
        if ! out=$("$kv" --strict -k "$v" "$file" 2>&1); then
            printf '%s\n' "$out" >&2
            fail "$name does not validate against Kubernetes $v (see above)"
        fi
        if printf '%s\n' "$out" | grep -qv '^INFO '; then
            printf '%s\n' "$out" >&2
            fail "$name: kubernetes-validate warned against Kubernetes $v (see above)"
        fi
        printf '%s\n' "$out" | grep -q ' passed for resource ' ||
            fail "$name: no resource validated against Kubernetes $v (an empty file?)"
        printf '%s\n' "$out" | sed "s|$file|$name|; s|^INFO |  ok |"
    done
}
