#!/usr/bin/env python3
"""Every citation of the protocol notes must name a heading that exists.

The conversation vectors justify their expectations by citing the notes
under docs/ as `docs/FILE.md#anchor`, and the notes link to each other with
relative Markdown links.  A heading renamed or a section moved would leave
those pointers dangling without any test noticing, so this checks:

  - every `docs/....md#anchor` in a vector's comments names an existing
    file and one of its headings, by the anchor GitHub derives from it (in
    tests/vectors/README.md the anchor may be left out);
  - every relative `(file.md#anchor)` link in docs/**/*.md does too;
  - no vector cites a text outside the repository (`spec/...`, DESIGN.md,
    or a bare `A.N` section of the old design notes) instead.

Prints one TAP-style line per file checked and "N passed, M failed" last;
exits nonzero on any failure.
  tests/check/doc_citations.py [REPO_ROOT]
"""

import glob
import os
import re
import sys

VECTOR_CITE = re.compile(r"docs/[\w./-]+?\.md(?:#[\w-]*)?")
MD_LINK = re.compile(r"\]\(([^)\s]+?\.md)(?:#([^)\s]*))?\)")
# Outside texts the vectors used to cite; the notes under docs/ replace them.
OUTSIDE = re.compile(r"spec/\w|DESIGN\.md|§|(?<![\w.])A\.\d+")


def slug(heading):
    """GitHub's anchor for a heading: Markdown links and code marks
    reduced to their text, lower case, every character that is not a
    letter, digit, space, hyphen or underscore dropped, spaces made
    hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = text.replace("`", "").replace("*", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


# GitHub's anchors for headings of the kinds the notes use.
assert slug("## 7. Where pmcore departs from libmilter, and why"[3:]) == \
    "7-where-pmcore-departs-from-libmilter-and-why"
assert slug("`K` QUIT_NC") == "k-quit_nc"
assert slug("A.11.1 Packets, sizes and garbage") == \
    "a111-packets-sizes-and-garbage"
assert slug("Reply text at `CONNECT`") == "reply-text-at-connect"


def anchors(path, cache={}):
    """The anchors of a Markdown file's headings (outside code fences),
    with GitHub's -1, -2 ... suffixes for repeated headings."""
    if path not in cache:
        found, seen, fenced = set(), {}, False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.lstrip().startswith("```"):
                    fenced = not fenced
                    continue
                m = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    base = slug(m.group(1))
                    n = seen.get(base, 0)
                    seen[base] = n + 1
                    found.add(base if n == 0 else "%s-%d" % (base, n))
        cache[path] = found
    return cache[path]


def resolve(target, anchor, where):
    """None if target (a path) and anchor are fine, else why not."""
    if not os.path.isfile(target):
        return "%s: no such file %s" % (where, target)
    if anchor is None or anchor == "":
        return None
    if anchor not in anchors(target):
        return "%s: %s has no heading #%s" % (where, target, anchor)
    return None


def check_vector(root, path):
    problems = []
    rel = os.path.relpath(path, root)
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.lstrip().startswith("#") and not path.endswith(".md"):
                continue
            where = "%s:%d" % (rel, no)
            for cite in VECTOR_CITE.findall(line):
                file_part, _, anchor = cite.partition("#")
                if "#" not in cite and not path.endswith(".md"):
                    problems.append("%s: %s cites no heading" % (where, cite))
                    continue
                why = resolve(os.path.join(root, file_part), anchor, where)
                if why:
                    problems.append(why)
            # The README's coverage table names checklist items (A.11.N)
            # on purpose; elsewhere, and in any comment, an outside text.
            if path.endswith(".md") and line.startswith("|"):
                continue
            if not line.lstrip().startswith("#") and path.endswith(".md"):
                probe = re.sub(r"`[^`]*`", "", line)
            else:
                probe = re.sub(r"\bcovers\b.*", "", line)
            m = OUTSIDE.search(probe)
            if m:
                problems.append("%s: cites %r, outside the repository; "
                                "cite docs/...md#anchor" % (where, m.group(0)))
    return problems


def check_doc(root, path):
    problems = []
    rel = os.path.relpath(path, root)
    fenced = False
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if fenced:
                continue
            for target, anchor in MD_LINK.findall(line):
                if re.match(r"\w+://", target):
                    continue
                full = os.path.normpath(os.path.join(os.path.dirname(path), target))
                why = resolve(full, anchor, "%s:%d" % (rel, no))
                if why:
                    problems.append(why)
    return problems


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    vectors = sorted(glob.glob(os.path.join(root, "tests/vectors/*.vec")))
    docs = sorted(glob.glob(os.path.join(root, "docs/**/*.md"), recursive=True))
    if not vectors or not docs:
        print("doc_citations: no vectors or no docs under %s" % root)
        return 1
    files = [(p, check_vector) for p in vectors]
    files.append((os.path.join(root, "tests/vectors/README.md"), check_vector))
    files += [(p, check_doc) for p in docs]
    passed = failed = cited = 0
    for path, check in files:
        problems = check(root, path)
        rel = os.path.relpath(path, root)
        if check is check_vector:
            with open(path, encoding="utf-8") as f:
                cited += len(VECTOR_CITE.findall(f.read()))
        if problems:
            failed += 1
            print("not ok - %s" % rel)
            for p in problems:
                print("    %s" % p)
        else:
            passed += 1
            print("ok - %s" % rel)
    print("# %d citations in the vectors" % cited)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
