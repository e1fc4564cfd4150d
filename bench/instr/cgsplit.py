"""Split a callgrind profile's instructions by who spent them.

    split_file(path) -> {part: instructions}   (self cost, no inclusive sums)

Parts:
  interpreter  the Python or Perl executable and its libraries, and the
               host language's other extension modules
  session      libpmcore's protocol layer (libpmcore/src/proto/*)
  loop         libpmcore's server runtime (libpmcore/src/server/*)
  client       libpmcore's MTA side (never in a milter; kept for honesty)
  glue         the binding's own C (python/src/milter/*, perl/*.xs|*.c) or
               the C milter's own functions
  libmilter    Sendmail's libmilter, for the reference milter
  libc         libc, libm, libpthread and the dynamic loader
  other        everything else (valgrind's preload, libz, libexpat, ...)

A cost line counts for the source file it names (fi=/fe= follow inlined
code), so an inline helper from internal_server.h counts as loop.  Code of
our own objects with a file outside the tree (a /usr/include inline) counts
for the function's own file.  Lines after calls= are inclusive costs of the
call and are skipped: only self costs add up to the total.
"""

import os
import re

PARTS = ("interpreter", "session", "loop", "client", "glue", "libmilter",
         "libc", "other")

_NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")
_LIBC = re.compile(r"^(libc|libm|libpthread|libdl|librt|ld-linux)[.-]")
_INTERP = re.compile(r"^(python\d|libpython|perl|libperl)")


def _own_part(path):
    """The part a source file of this repository is, or None."""
    p = path.replace("\\", "/")
    for layer in ("proto", "server", "client"):
        if f"/src/{layer}/" in p or p.startswith(f"src/{layer}/"):
            if "libpmcore" in p or p.startswith("src/"):
                return {"proto": "session", "server": "loop"}.get(layer, layer)
    if ("src/milter/" in p or p.endswith((".xs", "pmcore_perl.c"))
            or "/perl/" in p or "bench/c/" in p or "examples/" in p):
        return "glue"
    return None


def _object_part(obj):
    base = os.path.basename(obj)
    if base in ("PMilter.so", "milter_pmcore") or base.startswith("milter."):
        return "glue"  # our objects, code without a file of ours
    if _LIBC.match(base):
        return "libc"
    if base.startswith("libmilter"):
        return "libmilter"
    if obj.endswith("/milter_libmilter"):
        return "libmilter"  # libmilter.a linked in: no debug info of ours
    if _INTERP.match(base) or "/lib-dynload/" in obj or "/perl" in obj:
        return "interpreter"
    return "other"


class _Names:
    """callgrind's name compression: '(id) name' defines, '(id)' reuses."""

    def __init__(self):
        self.tab = {}

    def get(self, text):
        m = _NAME.match(text)
        if not m:
            return text
        if m.group(2) is not None:
            self.tab[m.group(1)] = m.group(2)
        return self.tab.get(m.group(1), "")


def split_lines(lines):
    parts = dict.fromkeys(PARTS, 0)
    obs, files = _Names(), _Names()  # fl/fi/fe/cfi share one table
    fns = _Names()
    ob = fl = fi = ""
    skip_next = False
    cache = {}

    def part_of(ob, fl, fi):
        key = (ob, fl, fi)
        if key not in cache:
            own = _own_part(fi) or _own_part(fl)
            cache[key] = own or _object_part(ob)
        return cache[key]

    for line in lines:
        c = line[:1]
        if c.isdigit() or c in "+-*":
            if skip_next:
                skip_next = False
                continue
            f = line.split()
            if len(f) > 1:
                parts[part_of(ob, fl, fi)] += int(f[1])
            continue
        skip_next = False
        if line.startswith("ob="):
            ob = obs.get(line[3:].rstrip("\n"))
        elif line.startswith("fl="):
            fl = fi = files.get(line[3:].rstrip("\n"))
        elif line.startswith(("fi=", "fe=")):
            fi = files.get(line[3:].rstrip("\n"))
        elif line.startswith("fn="):
            fns.get(line[3:].rstrip("\n"))
            fi = fl
        elif line.startswith("cob="):
            obs.get(line[4:].rstrip("\n"))
        elif line.startswith(("cfi=", "cfl=")):
            files.get(line[4:].rstrip("\n"))
        elif line.startswith("cfn="):
            fns.get(line[4:].rstrip("\n"))
        elif line.startswith("calls="):
            skip_next = True
    return parts


def split_file(path):
    with open(path, errors="replace") as f:
        return split_lines(f)


def totals_line(path):
    """The profile's own total (summary:/totals:), to check the split."""
    total = 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    return total
