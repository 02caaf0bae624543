# serve's container image: a builder stage compiles the stripped binary, a slim stage runs it.
#
#   docker build -t serve .            # or: podman build --format docker -t serve .
#   docker run --rm -p 8080:8080 serve # both tutorials' APIs: /predict (iris) and /model (titanic)
#   docker run --rm -p 8080:8080 -v $PWD/my-app:/srv/app:ro serve   # your app.toml and models
#
# Settings move without rebuilding: -e PORT=9000, -e WEB_CONCURRENCY=4, or any flag with
# -e SERVE_CMD_ARGS="--timeout 60" (it outranks /etc/serve/serve.toml; the command line outranks it).
# Stopping: docker and podman send TERM, then KILL after 10 s; serve's graceful timeout here is
# 8 s so that in-flight requests finish first. To give them longer, raise both together:
#   docker run --stop-timeout 40 -e SERVE_CMD_ARGS="--graceful-timeout 35" ...
#
# serve is PID 1: the master reaps orphans and handles TERM, INT and HUP itself (the kernel gives
# PID 1 no default signal actions), so no init shim (tini, dumb-init) is needed. USR2 re-exec is
# refused as PID 1: roll out a new container instead.

# The base images are arguments, so that a build can name a mirror or a local image:
#   podman build --build-arg BUILDER_IMAGE=localhost/rust --build-arg RUNTIME_IMAGE=localhost/debian ...
ARG BUILDER_IMAGE=docker.io/library/rust:1-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS build
# Where the sources go. A build that bind-mounts the host's checkout and target dir (as this
# repository's CI does, to reuse the release build it already made) sets it to the checkout's
# own path, so that cargo finds its build fresh.
ARG SRC=/src
WORKDIR ${SRC}
COPY . .
# CARGO_BUILD_TARGET, when the build is for a named target, moves cargo's output under it.
ARG CARGO_BUILD_TARGET
# The release profile strips the binary (Cargo.toml).
RUN cargo build --release --locked --bin serve \
 && cp "target/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release/serve" /serve

FROM ${RUNTIME_IMAGE}
COPY --from=build /serve /usr/local/bin/serve
# The examples app: iris (the French tutorial's /predict) and titanic (the Chinese one's /model).
COPY examples/app.toml /srv/app/app.toml
COPY examples/iris/model.onnx /srv/app/iris/model.onnx
COPY examples/titanic/model.onnx examples/titanic/sklearn.onnx /srv/app/titanic/
COPY config/container.toml /etc/serve/serve.toml
# A numeric user, so that Kubernetes' runAsNonRoot can check it without an /etc/passwd entry.
USER 10001:10001
# No -b in the CMD: the address comes from $PORT (0.0.0.0:$PORT) or SERVE_CMD_ARGS.
ENV PORT=8080 WEB_CONCURRENCY=2
EXPOSE 8080
STOPSIGNAL SIGTERM
# serve --probe asks /v2/health/ready at the address the same configuration binds: no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/serve", "--probe", "-c", "/etc/serve/serve.toml"]
# Exec form: signals reach serve, not a shell.
ENTRYPOINT ["/usr/local/bin/serve"]
CMD ["-c", "/etc/serve/serve.toml", "/srv/app/app.toml"]
