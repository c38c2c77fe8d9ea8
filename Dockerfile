# Build stage: compile the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN cargo build --release --locked --bin tessera

# The example calendar API (examples/resource_server), built only for the
# `resource-server` target that docker-compose.yml names.
FROM build AS build-example
COPY examples ./examples
RUN cargo build --release --locked --example resource_server

FROM debian:bookworm-slim AS resource-server
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/calendar-api --create-home calendar-api
COPY --from=build-example /src/target/release/examples/resource_server /usr/local/bin/resource_server
USER calendar-api
WORKDIR /var/lib/calendar-api
ENV RS_LISTEN=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/resource_server"]
CMD ["serve"]

# Runtime stage, last so that a plain `docker build` makes it: the
# binary on a slim Debian with OpenSSL and CA roots.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/tessera --create-home tessera
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
USER tessera
WORKDIR /var/lib/tessera
ENV TESSERA_LISTEN=0.0.0.0:8080 TESSERA_DATA_DIR=/var/lib/tessera
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
