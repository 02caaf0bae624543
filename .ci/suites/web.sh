#!/usr/bin/env bash
# The web side of serve, with the tools its users have: /metrics checked by promtool and
# parsed by prometheus_client (and config/prometheus/ by promtool), the OpenAPI document
# checked by openapi-spec-validator and turned into a Postman collection by openapi-to-postmanv2 (npm)
# as README says, the collection run by newman (npm) with every request answered 200, every example
# the document carries answered, and the front page (and /status) driven in a real
# browser (Debian's chromium through selenium). Installs node/npm and chromium with apt-get
# when missing, the Python tools in the venv the clients suite uses. Needs the debug binary
# that `cargo test` built (it builds it if missing). Screenshots and the generated documents
# land in ${SERVE_CI_ARTEFACTS:-target/ci-artefacts}.
set -euo pipefail
cd "$(dirname "$0")/../.."

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    [ -n "${web_apt_updated:-}" ] || { apt-get update -qq; web_apt_updated=1; }
    apt-get install -y -qq "$@" >/dev/null
}
command -v npm >/dev/null || apt_install nodejs npm
# promtool alone, from Debian's prometheus package (installing the package would start a
# Prometheus daemon), kept beside the venv.
promtool_dir=${SERVE_CI_PROMTOOL:-.promtool-ci}
if [ ! -x "$promtool_dir/usr/bin/promtool" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || {
        apt-get update -qq && web_apt_updated=1
        (cd "$tmp" && apt-get download prometheus >/dev/null)
    }
    dpkg -x "$tmp"/prometheus_*.deb "$promtool_dir"
    rm -rf "$tmp"
fi
export PROMTOOL=$PWD/$promtool_dir/usr/bin/promtool
# The shipped scrape configuration, recording rules and alerts.
"$PROMTOOL" check config config/prometheus/prometheus.yml && "$PROMTOOL" check rules config/prometheus/serve.rules.yml
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || apt_install chromium chromium-driver

venv=${SERVE_CI_VENV:-.venv-ci}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/web/requirements.txt
[ -x target/debug/serve ] || cargo build --bin serve

export SERVE_CI_ARTEFACTS=${SERVE_CI_ARTEFACTS:-target/ci-artefacts}
# The converter, pinned: the version a user would get from npm today.
export OPENAPI_TO_POSTMAN=openapi-to-postmanv2@6.3.3
export NEWMAN=newman@6.2.1
"$venv/bin/python" tests/web/test_web.py target/debug/serve
