#!/usr/bin/env bash
# Install what building and testing pmcore needs on Debian 12.  Idempotent
# and quiet: it asks apt only when a package is missing, and shows apt's
# output only when apt fails.
set -euo pipefail

# python3-dev and python3-venv: the Python binding is compiled into a venv.
pkgs=(build-essential clang libclang-rt-14-dev llvm valgrind python3
      python3-dev python3-venv)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all packages present"
    exit 0
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
log=$(mktemp)
echo "setup: installing ${missing[*]}"
if ! { "${sudo[@]}" apt-get update -q &&
       "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
           --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: apt-get failed" >&2
    exit 1
fi
rm -f "$log"
echo "setup: done"
