#!/usr/bin/env bash
# make bench-c: Sendmail's libmilter is the reference the C benchmark runs
# beside libpmcore; strace counts the milter's syscalls per message.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/apt-need.sh libmilter-dev strace util-linux
