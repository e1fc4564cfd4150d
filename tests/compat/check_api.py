#!/usr/bin/env python3
"""List every public name of the reference APIs and fail on any that ours
lacks.

Python: pymilter 1.0.5's sdist (its Milter/*.py and mime.py, read with
ast, because some of its modules cannot be imported on Python 3), plus the
names of its `milter` C module and of that module's classes, asked from
the reference build (`from milter import *` makes them Milter's too).
Ours is imported by the interpreter running this script.

Perl: Sendmail::PMilter 1.28's documented API: the methods of its POD
(`=item name(...)`, `=item $ctx->name`) and the symbols it lets callers
import (@EXPORT_OK and the %EXPORT_TAGS names), compared with what our
perl/blib provides (can() on Sendmail::PMilter or its Context, and our
own @EXPORT_OK and %EXPORT_TAGS).

    check_api.py --sdist DIR --ref-python PY --pmilter-pp LIB --perl DIR

Prints each missing name and a summary line per reference; exits 1 if a
name is missing, 2 if a reference cannot be read.
"""
import argparse
import ast
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig

# A `from X import Y` counts as a re-export only if X is not part of
# Python itself (a stdlib helper imported by the reference is no API of
# its own); Python 2 names are stdlib too.
PY2_STDLIB = {'StringIO', 'ConfigParser', 'anydbm', 'sgmllib', 'markupbase',
              'thread', 'urllib2'}


def is_stdlib(module):
    top = module.split('.')[0]
    if top in PY2_STDLIB or top in sys.builtin_module_names:
        return True
    names = getattr(sys, 'stdlib_module_names', None)   # 3.10+
    if names is not None:
        return top in names
    spec = importlib.util.find_spec(top)
    stdlib = sysconfig.get_paths()['stdlib']
    return bool(spec and spec.origin and spec.origin.startswith(stdlib) and
                'site-packages' not in spec.origin)


def public(name):
    return not name.startswith('_') or (
        name.startswith('__') and name.endswith('__'))


def is_main_guard(node):
    """if __name__ == '__main__': a script part, not API."""
    t = node.test
    return (isinstance(node, ast.If) and isinstance(t, ast.Compare) and
            isinstance(t.left, ast.Name) and t.left.id == '__name__')


def assigned(node):
    """Names an assignment statement binds."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    out = []
    for t in targets:
        elts = t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]
        out += [e.id for e in elts if isinstance(e, ast.Name)]
    return out


def class_members(cls):
    out = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name != '__init__' and public(node.name):
                out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            out.update(n for n in assigned(node) if public(n))
    return out


def module_names(tree, star):
    """{name: members or None} of a module's public top-level names;
    star(module) lists the names a `from module import *` brings."""
    names = {}

    def walk(body):
        for node in body:
            if isinstance(node, ast.If) and is_main_guard(node):
                continue
            if isinstance(node, ast.If):
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                # The except branches are Python 2 fallbacks
                # (from StringIO import StringIO; BytesIO = StringIO).
                walk(node.body)
                walk(node.orelse)
                walk(node.finalbody)
            elif isinstance(node, ast.ClassDef):
                names[node.name] = class_members(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names[node.name] = None
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for n in assigned(node):
                    names.setdefault(n, None)
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    not is_stdlib(node.module) and \
                    node.module != '__future__':
                for a in node.names:
                    if a.name == '*':
                        for n in star(node.module):
                            names.setdefault(n, None)
                    else:
                        names.setdefault(a.asname or a.name, None)
    walk(tree.body)
    return {n: m for n, m in names.items() if public(n)}


def pymilter_api(sdist, ref_python):
    """{module: {name: members}} of the sdist, and of its C module."""
    probe = ('import json, milter, inspect\n'
             'out = {}\n'
             'for n in dir(milter):\n'
             '    v = getattr(milter, n)\n'
             '    out[n] = sorted(m for m in vars(v) if not m.startswith("_"))'
             ' if inspect.isclass(v) else None\n'
             'print(json.dumps(out))\n')
    try:
        res = subprocess.run([ref_python, '-c', probe], check=True,
                             stdout=subprocess.PIPE, universal_newlines=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit('check_api: cannot ask the reference pymilter build %s '
                 '(make pymilter-ref): %s' % (ref_python, e))
    cmod = {n: (set(m) if m is not None else None)
            for n, m in json.loads(res.stdout).items() if public(n)}
    cmod.pop('__doc__', None)

    def star(module):
        if module != 'milter':
            sys.exit('check_api: cannot list "from %s import *"' % module)
        return list(cmod)
    api = {'milter': cmod}
    files = {'mime': os.path.join(sdist, 'mime.py')}
    pkg = os.path.join(sdist, 'Milter')
    for f in sorted(os.listdir(pkg)):
        if f.endswith('.py'):
            mod = 'Milter' if f == '__init__.py' else 'Milter.' + f[:-3]
            files[mod] = os.path.join(pkg, f)
    for mod, path in files.items():
        with open(path) as fp:
            api[mod] = module_names(ast.parse(fp.read(), path), star)
    return api


def missing_python(api):
    """Names of api the importable modules lack (module, name, member)."""
    out = []
    for mod, names in sorted(api.items()):
        try:
            ours = importlib.import_module(mod)
        except Exception as e:
            out.append('%s (module: %s: %s)' % (mod, type(e).__name__, e))
            continue
        for name, members in sorted(names.items()):
            if name in ('__doc__', '__file__', '__name__'):
                continue
            if not hasattr(ours, name):
                out.append('%s.%s' % (mod, name))
                continue
            obj = getattr(ours, name)
            for m in sorted(members or ()):
                if not hasattr(obj, m):
                    out.append('%s.%s.%s' % (mod, name, m))
    return out


POD_METHOD = re.compile(r'^=item\s+(?:\$ctx->(\w+)|(?:Sendmail::PMilter::)?'
                        r'(\w+)\s*\()')


def pmilter_api(lib):
    """(methods of Sendmail::PMilter, of its Context, exportable names)
    from the 1.28 reference in lib."""
    methods, ctx = set(), set()
    for path, into in (('Sendmail/PMilter.pm', methods),
                       ('Sendmail/PMilter/Context.pm', ctx)):
        try:
            with open(os.path.join(lib, path)) as fp:
                for line in fp:
                    m = POD_METHOD.match(line)
                    if m:
                        if m.group(1):
                            ctx.add(m.group(1))
                        else:
                            into.add(m.group(2))
        except OSError as e:
            sys.exit('check_api: Sendmail::PMilter 1.28 not found: %s' % e)
    exports = perl_json(['-I', lib], None)
    return methods, ctx, exports


def perl_json(args, cwd, names=None):
    """The exportable names of the Sendmail::PMilter perl loads with args
    (and with names given, which of them can() finds where)."""
    code = r'''
use strict; use warnings; use Sendmail::PMilter;
require Sendmail::PMilter::Context;   # loaded by main() otherwise
my @want = @ARGV;
my %out = (export_ok => [@Sendmail::PMilter::EXPORT_OK],
           tags => [sort keys %Sendmail::PMilter::EXPORT_TAGS],
           version => "$Sendmail::PMilter::VERSION", can => {});
for my $n (@want) {
    my ($pkg, $m) = split /\s/, $n;
    $out{can}{$n} = $pkg->can($m) ? 1 : 0;
}
sub enc { my $v = shift;
  return '[' . join(',', map { enc($_) } @$v) . ']' if ref $v eq 'ARRAY';
  return '{' . join(',', map { enc($_) . ':' . enc($v->{$_}) } sort keys %$v)
      . '}' if ref $v eq 'HASH';
  $v =~ s/(["\\])/\\$1/g; return qq{"$v"}; }
print enc(\%out), "\n";
'''
    try:
        res = subprocess.run(['perl'] + args + ['-e', code] + (names or []),
                             check=True, cwd=cwd, stdout=subprocess.PIPE,
                             universal_newlines=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit('check_api: perl %s failed: %s' % (' '.join(args), e))
    return json.loads(res.stdout)


def missing_perl(ref, perl_dir):
    methods, ctx, exports = ref
    queries = ['Sendmail::PMilter ' + m for m in sorted(methods)] + \
        ['Sendmail::PMilter::Context ' + m for m in sorted(ctx)]
    ours = perl_json(['-Mblib'], perl_dir, queries)
    out = [q.replace(' ', '->') for q in queries if not int(ours['can'][q])]
    out += ['Sendmail::PMilter @EXPORT_OK ' + n for n in exports['export_ok']
            if n not in ours['export_ok']]
    out += [':%s (export tag)' % t for t in exports['tags']
            if t not in ours['tags']]
    return out, len(queries) + len(exports['export_ok']) + \
        len(exports['tags']), exports['version']


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sdist', required=True,
                    help='unpacked pymilter-1.0.5 sdist')
    ap.add_argument('--ref-python', required=True,
                    help='python with the reference pymilter (for milter)')
    ap.add_argument('--pmilter-pp', required=True,
                    help='library dir holding Sendmail/PMilter.pm 1.28')
    ap.add_argument('--perl', required=True,
                    help='our perl/ directory, built (blib/)')
    a = ap.parse_args()
    bad = 0
    api = pymilter_api(a.sdist, a.ref_python)
    total = sum(1 + sum(len(m or ()) for m in names.values())
                for names in api.values()) + len(api)
    miss = missing_python(api)
    for m in miss:
        print('missing (pymilter 1.0.5): ' + m)
    print('pymilter 1.0.5: %d modules, %d public names, %d missing'
          % (len(api), total, len(miss)))
    bad += len(miss)
    pm_miss, pm_total, version = missing_perl(pmilter_api(a.pmilter_pp),
                                              a.perl)
    for m in pm_miss:
        print('missing (Sendmail::PMilter %s): %s' % (version, m))
    print('Sendmail::PMilter %s: %d documented methods and exports, '
          '%d missing' % (version, pm_total, len(pm_miss)))
    bad += len(pm_miss)
    if not version.startswith('1.2'):
        print('check_api: the Perl reference is %s, not 1.28' % version)
        bad += 1
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
