#!/usr/bin/env python3
"""Run the doctests of pymilter 1.0.5's own source on its modules and on
ours, and fail where an example's outcome differs.

The examples are read from the reference files (docstrings of modules,
classes, functions and methods).  Each runs twice: with the reference
module's namespace (loaded from the sdist by the reference interpreter)
and with ours (imported by this interpreter).  Host names the examples
resolve are answered by a fixed table (no network).  An example that
fails on pymilter itself (its unsign() doctest promises decoding that was
never written) must fail on ours too, so the comparison is per example.

    ref_doctests.py SDIST_DIR REF_PYTHON
"""
import ast
import doctest
import importlib
import importlib.util
import json
import os
import socket
import subprocess
import sys

FAKE_DNS = {
    'b.resolvers.level3.net': ['4.2.2.2'],
    'example.com': ['2606:2800:220:1:248:1893:25c8:1946', '93.184.216.34'],
}


def fake_getaddrinfo(host, port, family=0, *rest):
    addrs = FAKE_DNS.get(str(host).lower())
    if not addrs:
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    out = []
    for a in addrs:
        fam = socket.AF_INET6 if ':' in a else socket.AF_INET
        if not family or family == fam:
            out.append((fam, socket.SOCK_STREAM, 6, '', (a, port)))
    return out


def docstrings(path):
    """(qualified name, line, text) of every docstring with examples."""
    with open(path) as fp:
        tree = ast.parse(fp.read(), path)
    out = []

    def visit(node, prefix):
        doc = ast.get_docstring(node, clean=False)
        if doc and '>>>' in doc:
            line = node.body[0].lineno if getattr(node, 'body', None) else 0
            out.append((prefix or '<module>', line, doc))
        for child in getattr(node, 'body', []):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef,
                                  ast.AsyncFunctionDef)):
                visit(child, (prefix + '.' if prefix else '') + child.name)
    visit(tree, '')
    return out


class Recorder(doctest.DocTestRunner):
    def __init__(self):
        doctest.DocTestRunner.__init__(self, verbose=False)
        self.results = {}

    def _key(self, test, example):
        return '%s:%d' % (test.name, test.examples.index(example))

    def report_start(self, out, test, example):
        pass

    def report_success(self, out, test, example, got):
        self.results[self._key(test, example)] = True

    def report_failure(self, out, test, example, got):
        self.results[self._key(test, example)] = got

    def report_unexpected_exception(self, out, test, example, exc_info):
        self.results[self._key(test, example)] = 'raised %s: %s' % (
            exc_info[0].__name__, exc_info[1])


def run(path, module):
    """Outcome of each example of path's docstrings in module's
    namespace: True, or what it printed instead."""
    socket.getaddrinfo = fake_getaddrinfo
    parser = doctest.DocTestParser()
    runner = Recorder()
    for name, line, text in docstrings(path):
        test = parser.get_doctest(text, dict(vars(module)), name, path, line)
        runner.run(test, clear_globs=True)
    return runner.results


def load_reference(path):
    spec = importlib.util.spec_from_file_location(
        'pymilter_ref_' + os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    if sys.argv[1:2] == ['--reference']:
        print(json.dumps(run(sys.argv[2], load_reference(sys.argv[2]))))
        return
    sdist, ref_python = sys.argv[1:3]
    files = {'mime': os.path.join(sdist, 'mime.py')}
    for f in sorted(os.listdir(os.path.join(sdist, 'Milter'))):
        if f.endswith('.py') and f != '__init__.py':
            files['Milter.' + f[:-3]] = os.path.join(sdist, 'Milter', f)
    total = differ = 0
    for mod, path in sorted(files.items()):
        if not docstrings(path):
            continue
        ref = json.loads(subprocess.run(
            [ref_python, os.path.abspath(__file__), '--reference', path],
            check=True, stdout=subprocess.PIPE,
            universal_newlines=True).stdout)
        ours = run(path, importlib.import_module(mod))
        bad = [k for k in sorted(ref) if (ref[k] is True) !=
               (ours.get(k) is True)]
        for key in bad:
            print('differs: %s %s: pymilter %r, ours %r'
                  % (mod, key, ref[key], ours.get(key)))
        total += len(ref)
        differ += len(bad)
        print('%s: %d examples (%d pass on pymilter), %d differ on ours'
              % (mod, len(ref), sum(v is True for v in ref.values()),
                 len(bad)))
    print('doctests: %d examples, %d with a different outcome' % (total,
                                                                  differ))
    sys.exit(1 if differ or not total else 0)


if __name__ == '__main__':
    main()
