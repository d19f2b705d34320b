# syntax=docker/dockerfile:1
# The same image hack/image.sh writes without Docker: one static binary in an empty image,
# run as a non-root user. Build with `docker build -t docker.io/sessionplane/sessionplane:0.1.0 .`
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY crates crates
# crt-static links glibc statically, so the binary runs in `scratch`; --target keeps build
# scripts and proc macros dynamically linked (RUSTFLAGS then applies to the target only).
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu --bin sessionplane \
 && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/sessionplane /out/sessionplane \
 && mkdir -p /out/etc \
 && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >/out/etc/passwd \
 && echo 'nonroot:x:65532:' >/out/etc/group

FROM scratch
COPY --from=builder /out/etc/passwd /out/etc/group /etc/
COPY --from=builder /out/sessionplane /sessionplane
USER 65532:65532
ENTRYPOINT ["/sessionplane"]
