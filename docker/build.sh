#!/usr/bin/env bash
# Build one of docker/Dockerfile's images, with or without a Docker engine.
#
#   docker/build.sh --target sagemaker|runtime|service [--tag NAME] [--variant cpu|cuda]
#
# With a Docker engine that answers (`docker info`), this is `docker build`. Without one (build machines
# with no Docker daemon and no container registry, such as CI's), the same Dockerfile is built with
# Debian's podman/buildah, as docs/cloud.md describes:
#   - podman, buildah, runc and mmdebstrap are installed with apt-get when missing (root only);
#   - the base image is made from Debian packages with mmdebstrap (Python 3.11 from bookworm) and imported
#     into podman's store once (`podman rmi localhost/shotfit-base:bookworm` makes a fresh one);
#   - for the CPU variant, a CPU torch wheel that pip finds on this machine (its find-links) is served as a
#     one-package index on the loopback; without one, the build uses PyTorch's CPU index;
#   - `buildah build --isolation chroot --layers`, with this machine's CA bundle bind-mounted over the
#     image's for the RUN steps only (never part of an image), so a TLS-inspecting proxy's CA is trusted.
#
# Environment: SHOTFIT_IMAGE_ENGINE (docker or buildah; default: docker when its engine answers),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), SHOTFIT_IMAGE_CACHE (work folder, default
# ~/.cache/shotfit-image), PYTHON (the pip that looks for the torch wheel; default .venv/bin/python or python3),
# TORCH_CPU_INDEX (a CPU torch index to use instead), CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt).
set -euo pipefail

target=runtime
variant=cpu
tag=
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --variant) variant="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "docker/build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$target" in sagemaker|runtime|service) ;; *) echo "docker/build.sh: --target must be sagemaker, runtime or service, not '$target'" >&2; exit 2 ;; esac
case "$variant" in cpu|cuda) ;; *) echo "docker/build.sh: --variant must be cpu or cuda, not '$variant'" >&2; exit 2 ;; esac
if [ -z "$tag" ]; then
    case "$target" in runtime) tag="shotfit:$variant" ;; *) tag="shotfit:$target-$variant" ;; esac
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
cache="${SHOTFIT_IMAGE_CACHE:-${HOME:-/root}/.cache/shotfit-image}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
base_image=localhost/shotfit-base:bookworm
# a fixed port: the index's address is a build argument, and a new one each time would rebuild torch's layer
torch_port="${SHOTFIT_TORCH_INDEX_PORT:-38517}"
started=$SECONDS

say() { printf 'docker/build.sh [%4d s]: %s\n' "$((SECONDS - started))" "$*" >&2; }

engine="${SHOTFIT_IMAGE_ENGINE:-}"
if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker; else engine=buildah; fi
fi

if [ "$engine" = docker ]; then
    say "building $tag (target $target, $variant) with docker build"
    set -- --target "$target" --build-arg "VARIANT=$variant" -t "$tag"
    [ -n "${TORCH_CPU_INDEX:-}" ] && set -- "$@" --network host --build-arg "TORCH_CPU_INDEX=$TORCH_CPU_INDEX"
    docker build -f docker/Dockerfile "$@" .
    say "built $tag"
    exit 0
fi
[ "$engine" = buildah ] || { echo "docker/build.sh: SHOTFIT_IMAGE_ENGINE must be docker or buildah, not '$engine'" >&2; exit 2; }

# --- the tools ---
missing=()
for tool in podman buildah runc mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "docker/build.sh: no Docker engine, and ${missing[*]} not installed: apt-get install podman buildah runc mmdebstrap" >&2
        exit 1
    fi
    say "installing ${missing[*]} (no Docker engine here)"
    # another apt-get may hold the lock (a shared machine): wait for it rather than fail
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq podman buildah runc mmdebstrap >/dev/null
fi
mkdir -p "$cache"

# --- the base image: Debian bookworm's Python 3.11, as python:3.11-slim-bookworm has it ---
if ! podman image exists "$base_image"; then
    say "making the base image $base_image from $mirror (mmdebstrap)"
    rm -f "$cache/base.tar"
    # docs and man pages left out as the slim images do (copyright files kept)
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --aptopt='Acquire::Retries "3"' bookworm "$cache/base.tar" "$mirror"
    podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$cache/base.tar" "$base_image" >/dev/null
    rm -f "$cache/base.tar"
    say "made the base image"
fi

# --- the CPU torch wheel: this machine's, served on the loopback, unless an index was named ---
build_args=(--build-arg "VARIANT=$variant" --build-arg "PYTHON_IMAGE=$base_image")
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; return 0; }
trap cleanup EXIT
if [ "$variant" = cpu ] && [ -n "${TORCH_CPU_INDEX:-}" ]; then
    build_args+=(--build-arg "TORCH_CPU_INDEX=$TORCH_CPU_INDEX")
elif [ "$variant" = cpu ]; then
    python="${PYTHON:-}"
    if [ -z "$python" ]; then
        if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
    fi
    torch_pin="$(grep -E '^torch==' requirements/lock.txt)"
    index="$cache/torch-index"
    rm -rf "$index" && mkdir -p "$index/torch"
    # --no-index: only what lies on this machine (pip's find-links); PyPI's Linux torch is the CUDA build
    if "$python" -m pip download --quiet --no-deps --no-index --only-binary=:all: --python-version 3.11 \
            -d "$index/torch" "$torch_pin" 2>/dev/null \
       && ls "$index/torch"/*+cpu-*.whl >/dev/null 2>&1; then
        say "serving $(basename "$index"/torch/*.whl) on 127.0.0.1:$torch_port"
        "$python" -m http.server --bind 127.0.0.1 --directory "$index" "$torch_port" >"$cache/torch-index.log" 2>&1 &
        server=$!
        for _ in $(seq 50); do
            "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$torch_port/torch/', timeout=1)" \
                2>/dev/null && break
            kill -0 "$server" 2>/dev/null || { cat "$cache/torch-index.log" >&2; echo "docker/build.sh: the torch index did not start (port $torch_port in use? set SHOTFIT_TORCH_INDEX_PORT)" >&2; exit 1; }
            sleep 0.2
        done
        build_args+=(--build-arg "TORCH_CPU_INDEX=http://127.0.0.1:$torch_port/")
    else
        say "no CPU torch wheel on this machine: torch comes from PyTorch's CPU index"
    fi
fi

# --- the build ---
volumes=()
[ -f "$ca_bundle" ] && volumes+=(-v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
say "building $tag (target $target, $variant) with buildah"
# docker format: the OCI format has no HEALTHCHECK (the service image's); chroot isolation shares the
# machine's network, so the loopback index is reachable from the RUN steps
buildah build --quiet=false --isolation chroot --layers --format docker --target "$target" \
    "${build_args[@]}" "${volumes[@]}" -f docker/Dockerfile -t "$tag" .
size="$(podman image inspect --format '{{.Size}}' "$tag")"
say "built $tag: $((size / 1000000)) MB"
