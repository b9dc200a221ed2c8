# Production image of the `kavling` binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p kavling-server --bin kavling

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/kavling kavling && mkdir -p /var/lib/kavling && chown kavling /var/lib/kavling
COPY --from=build /src/target/release/kavling /usr/local/bin/kavling
USER kavling
WORKDIR /var/lib/kavling
ENV KAVLING_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kavling"]
CMD ["serve"]
