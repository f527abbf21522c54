# replicatord container image: Debian 12 (bookworm), the same distribution and
# packages the project is built and tested with (scripts/install-deps).
#
#   docker build -t replicatord .
#   docker run --rm -v $PWD/my.toml:/etc/replicatord/replicatord.toml:ro \
#     -p 9464:9464 replicatord
#
#   build stage (debian:12)                runtime stage (debian:12-slim)
#   +------------------------------+       +--------------------------------+
#   | g++ cmake ninja  *-dev libs  |       | shared libraries only          |
#   | cmake -G Ninja Release       | ----> | /usr/local/bin/replicatord     |
#   | replicatord, replicatorctl   |       | /usr/local/bin/replicatorctl   |
#   +------------------------------+       | user replicatord (uid 10001)   |
#                                          | /var/lib/replicatord (volume)  |
#                                          +--------------------------------+
#
# The image has not been built in CI (no Docker engine there);
# tests/unit/compose_check.py checks what it can without one: the FROM lines,
# the build targets, and that every shared library the binary needs comes from
# a package installed here.

# ----------------------------------------------------------------- build stage
FROM debian:12 AS build

# The build half of scripts/install-deps: compiler, CMake, Ninja and the -dev
# packages (librdkafka 2.0.2, Boost 1.74 headers, toml++ 3.3, zstd,
# prometheus-cpp 1.0, RocksDB 7.8, doctest, libcurl 7.88). doctest is needed
# because CMake configures the tests too, even though they are not built here.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      librdkafka-dev libboost-dev libtomlplusplus-dev libzstd-dev \
      prometheus-cpp-dev librocksdb-dev doctest-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target replicatord replicatorctl \
 && strip /build/app/replicatord /build/app/replicatorctl

# --------------------------------------------------------------- runtime stage
FROM debian:12-slim

# Exactly the libraries the binaries link (readelf -d: NEEDED) that
# debian:12-slim does not already have; libc6, libgcc-s1, libstdc++6 and
# libzstd1 are part of the base image (libzstd1 is listed anyway, for
# clarity). curl is only for the HEALTHCHECK below; ca-certificates for
# https:// S3 endpoints and SSL listeners.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libtomlplusplus3 libzstd1 libprometheus-cpp-core1.0 \
      librocksdb7.8 libcurl4 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /build/app/replicatord /build/app/replicatorctl /usr/local/bin/

# Unprivileged user; state_dir (the RocksDB offset index) lives in a volume.
RUN groupadd --system --gid 10001 replicatord \
 && useradd --system --uid 10001 --gid replicatord --home-dir /var/lib/replicatord \
      --shell /usr/sbin/nologin replicatord \
 && mkdir -p /var/lib/replicatord /etc/replicatord \
 && chown replicatord:replicatord /var/lib/replicatord
VOLUME ["/var/lib/replicatord"]
WORKDIR /var/lib/replicatord
USER replicatord

# Admin endpoint: /metrics /healthz /readyz /status. The config must set
# admin_listen = "0.0.0.0:9464" for it to be reachable from outside the
# container, and a non-loopback admin_listen requires a bearer token.
EXPOSE 9464

# /healthz needs no token. Adjust the port if admin_listen uses another one.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:9464/healthz || exit 1

ENTRYPOINT ["replicatord"]
CMD ["--config", "/etc/replicatord/replicatord.toml"]
