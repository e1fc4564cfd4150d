#!/usr/bin/env bash
# Install what building and testing pmcore needs on Debian 12.  Idempotent
# and quiet: it asks apt only when a package is missing, and shows apt's
# output only when apt fails.  Feature-specific steps (Postfix for the
# end-to-end suite, reference implementations for the differential tests and
# benchmarks) live in scripts/setup.d/*.sh, run in name order after this.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-dev and python3-venv: the Python binding is compiled into a venv;
# cpanminus: the README installs the Perl binding with `cpanm ./perl`.
pkgs=(build-essential clang libclang-rt-14-dev llvm valgrind python3
      python3-dev python3-venv perl cpanminus)

scripts/apt-need.sh "${pkgs[@]}"

for step in scripts/setup.d/*.sh; do
    [ -e "$step" ] || continue
    bash "$step"
done
