# The image of docker-compose.yml's stockstream services: the stockstream and producer
# binaries, the four SmartModules (as `smdk build` builds them), the transforms files and the
# dashboard's front end. Not built by CI (no Docker engine there); see README.md.
FROM rust:1.88-bookworm AS build
RUN rustup target add wasm32-wasip1 wasm32-unknown-unknown
WORKDIR /src
COPY . .
RUN cargo build --release -p stockstream -p producer \
    && cargo build --profile release-lto --target wasm32-wasip1 \
        -p tick-filter -p rolling-stats -p zscore-anomaly -p window-bars -p enrich -p bars \
    && bash dashboard/build.sh

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/stockstream /src/target/release/producer /usr/local/bin/
COPY --from=build /src/target/wasm32-wasip1/release-lto/*.wasm /app/wasm/
COPY --from=build /src/transforms /app/transforms
COPY --from=build /src/dashboard/dist /app/dashboard/dist
# The sample that `stockstream run` and the producer replay when given no input.
COPY --from=build /src/data /app/data
CMD ["stockstream", "--help"]
