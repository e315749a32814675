#!/usr/bin/env bash
# What the QEMU cross-target test (tests/tests/qemu.rs) needs on a fresh Debian/Ubuntu machine:
# qemu-system-arm (the mps2-an386 Cortex-M4F and mps2-an500 Cortex-M7 boards) and
# qemu-system-riscv32 (apt: qemu-system-arm, qemu-system-misc; QEMU 7.2 on Debian 12) and the two
# bare-metal targets (rustup).
set -euo pipefail

if ! command -v qemu-system-arm >/dev/null 2>&1 || ! command -v qemu-system-riscv32 >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends qemu-system-arm qemu-system-misc
fi
qemu-system-arm --version | head -n 1
qemu-system-riscv32 --version | head -n 1

rustup target add thumbv7em-none-eabihf riscv32imac-unknown-none-elf
