#!/usr/bin/env bash
# Installs everything gst-talker needs on Debian 12 to build, run and pass its
# tests: the build tools and libraries, GStreamer's plugins, the servers the
# tests start on loopback (nginx-rtmp), chromium for the browser tests, and
# the test peers' node modules (npm ci in tests/). Safe to run again; uses
# sudo only when not root.
#
#   tools/install-deps.sh            everything
#   tools/install-deps.sh --no-npm   the Debian packages only
set -euo pipefail
cd "$(dirname "$0")/.."
npm=1
[ "${1:-}" = "--no-npm" ] && npm=0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# One list, read by the README's commands and by .ci/run alike.
# libopenblas0-pthread: Debian's libtorch calls libblas.so.3; without OpenBLAS it
# falls back to the reference BLAS, ~15x slower on the models.
packages=(
  meson ninja-build pkg-config g++
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav ffmpeg
  libtorch-dev libopenblas0-pthread catch2 nlohmann-json3-dev zlib1g-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libopencv-objdetect-dev libopencv-videoio-dev opencv-data libdlib-dev libdlib-data
  python3-skimage opencv-doc python3-torch
  espeak-ng libespeak-ng-dev libsoup-3.0-dev
  libgstreamer-plugins-bad1.0-dev gstreamer1.0-nice libnice-dev
  # Test peers: nginx-rtmp, chromium (driven by node's playwright-core), the
  # TLS test certificate, the SRS viewer (curl reads its HTTP-FLV).
  nginx libnginx-mod-rtmp chromium openssl curl
  # tools/fuzz.sh: clang with libFuzzer and the sanitizer runtimes.
  clang libclang-rt-14-dev
)
# node and npm drive the browser tests; Debian's only where none is installed
# (a NodeSource node bundles its own npm, which Debian's npm would conflict with).
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

echo "install-deps: apt-get update"
$SUDO apt-get update -qq
echo "install-deps: installing ${#packages[@]} Debian packages (already installed ones are kept)"
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# The nginx package starts a server on port 80; the tests start their own.
$SUDO service nginx stop >/dev/null 2>&1 || true

if [ "$npm" = 1 ]; then
  echo "install-deps: npm ci in tests/ (playwright-core, no browser download)"
  npm ci --prefix tests --no-audit --no-fund --loglevel=error >/dev/null
fi
echo "install-deps: done"
