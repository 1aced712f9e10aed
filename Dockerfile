# Build stage: a static runner binary (glibc, crt-static), no shared library needed.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs single-program.order ./
# The linker wrapper that lays out single-program mode's code first (README, issue 18).
COPY .cargo ./.cargo
COPY scripts/link-gcc ./scripts/link-gcc
COPY src ./src
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/runner /usr/local/bin/runner

# Final stage: the Python cluster example under runner as PID 1.
FROM python:3.12-slim
COPY --from=build /usr/local/bin/runner /usr/local/bin/runner
COPY examples/python-cluster /app
EXPOSE 8090
HEALTHCHECK --interval=10s --timeout=3s CMD ["runner", "status"]
ENTRYPOINT ["runner"]
CMD ["/app/ecosystem.toml"]
