# tokenway container image: the gateway, the model-server simulator and the benchmark client.
#   docker build -t tokenway .
# The Kubernetes manifests under deploy/kubernetes/ run this image as `tokenway:latest`.

FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config python3 \
      libboost1.81-dev libsimdjson-dev libyaml-cpp-dev libcli11-dev libxxhash-dev \
      libgtest-dev libgmock-dev libbenchmark-dev libssl-dev libhiredis-dev libre2-dev libutf8proc-dev \
      libhnswlib-dev \
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN rm -rf build \
 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build --target tokenway tokenway-sim tokenway-bench \
 && install -m 0755 build/src/main/tokenway build/tokenway-sim build/tokenway-bench /usr/local/bin/

FROM debian:12
# Exactly the shared libraries the three binaries link (ldd, mapped with dpkg -S); libc6,
# libgcc-s1 and libstdc++6 are already in the base image. gRPC (the gateway's KEDA scaler) brings
# its own dependencies (libgrpc29, abseil, c-ares, re2, zlib); the payload processors link re2
# and utf8proc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libsimdjson14 libyaml-cpp0.7 libxxhash0 libhiredis0.14 \
      libgrpc++1.51 libprotobuf32 libre2-9 libutf8proc2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tokenway \
 && useradd --system --uid 10001 --gid tokenway --no-create-home --shell /usr/sbin/nologin tokenway
COPY --from=build /usr/local/bin/tokenway /usr/local/bin/tokenway-sim /usr/local/bin/tokenway-bench /usr/local/bin/
USER 10001:10001
EXPOSE 8080 8081 9100
ENTRYPOINT ["tokenway"]
CMD ["--config", "/etc/tokenway/tokenway.yaml"]
