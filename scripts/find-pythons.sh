#!/bin/sh
# The CPythons 3.8 to 3.13 on this machine, one line each: "3.N PATH" (the
# first of pyenv's 3.N.* or python3.N on PATH); a version not found is
# printed as "3.N -".  Used by tests/python-versions.sh and
# scripts/build-wheels.sh, so both see the same interpreters.
for minor in 8 9 10 11 12 13; do
    py=-
    for cand in "$HOME"/.pyenv/versions/3."$minor".*/bin/python \
                "$(command -v python3."$minor" 2>/dev/null)"; do
        [ -x "$cand" ] && { py=$cand; break; }
    done
    echo "3.$minor $py"
done
