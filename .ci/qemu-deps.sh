#!/usr/bin/env bash
# What the QEMU cross-target test (tests/tests/qemu.rs) needs on a fresh Debian/Ubuntu machine:
# qemu-system-arm (apt, QEMU 7.2 on Debian 12) and the Cortex-M4F target (rustup).
set -euo pipefail

if ! command -v qemu-system-arm >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends qemu-system-arm
fi
qemu-system-arm --version | head -n 1

rustup target add thumbv7em-none-eabihf
