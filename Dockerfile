# The image: one static-enough binary on a slim base, serve as PID 1.
#   docker build -t serve .
#   docker run --rm -p 8080:8080 serve                      # the iris model baked in below
#   docker run --rm -p 8080:8080 -v $PWD/models:/models serve   # your models
# The master reaps orphans and handles TERM itself (PID 1 gets no default signal actions),
# so no init shim is needed. USR2 upgrades are refused as PID 1: roll out a new container.
FROM docker.io/library/rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin serve \
 && strip target/release/serve

FROM docker.io/library/debian:bookworm-slim
COPY --from=build /src/target/release/serve /usr/local/bin/serve
COPY examples/iris/model.onnx /models/iris.onnx
# A numeric user, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080
# Exec form: signals reach serve, not a shell.
ENTRYPOINT ["/usr/local/bin/serve"]
CMD ["-b", ":8080", "-w", "2", "/models"]
