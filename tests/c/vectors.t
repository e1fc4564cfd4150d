#!/bin/sh
# For prove, which gives a test no arguments: the vector runner over
# tests/vectors, built in $BUILD (default build), with $VEC_ARGS (e.g.
# --no-split) as the Makefile passes them.  Run from the top directory.
exec "${BUILD:-build}/tests/vecrun" ${VEC_ARGS:-} "$(dirname "$0")/../vectors"
