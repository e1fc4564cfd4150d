"""Build the `milter` extension with libpmcore compiled in.

The core's sources come from ../libpmcore in the repository (copied into
libpmcore_vendor/ on every run) or from libpmcore_vendor/ inside an sdist,
so an sdist builds on its own and no system library is needed.
"""
import glob
import os
import shutil
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_CORE = os.path.join(HERE, '..', 'libpmcore')
VENDOR = 'libpmcore_vendor'


def vendor():
    """Refresh the copy of the repository's core inside the package tree."""
    dst = os.path.join(HERE, VENDOR)
    shutil.rmtree(dst, ignore_errors=True)
    for sub in ('include', 'src'):
        shutil.copytree(os.path.join(REPO_CORE, sub), os.path.join(dst, sub))


# Setuptools mishandles sources named with "../" (an sdist copies them
# out of its release tree, object files land outside build/), so the core
# is always compiled from a copy inside the package tree: refreshed from
# ../libpmcore on every run in the repository (one source of truth), and
# shipped as is in the sdist, which then builds on its own.
if os.path.isfile(os.path.join(REPO_CORE, 'include', 'pmcore.h')):
    vendor()
if not os.path.isfile(os.path.join(HERE, VENDOR, 'include', 'pmcore.h')):
    sys.exit('setup.py: libpmcore not found (neither ../libpmcore nor %s)'
             % VENDOR)
CORE = VENDOR
# One folder per layer of the core (src/proto, src/client, src/server).
core_srcs = sorted(glob.glob(os.path.join(CORE, 'src', '*', '*.c')))
ext_srcs = sorted(glob.glob(os.path.join('src', 'milter', '*.c')))

milter_ext = Extension(
    'milter',
    sources=ext_srcs + core_srcs,
    include_dirs=[os.path.join(CORE, 'include'), os.path.join(CORE, 'src'),
                  os.path.join('src', 'milter')],
    extra_compile_args=['-std=c11', '-fvisibility=hidden', '-Wall',
                        '-Wextra'],
    extra_link_args=['-Wl,-Bsymbolic',
                     '-Wl,--version-script=' +
                     os.path.join('src', 'milter', 'exports.map')],
)

setup(ext_modules=[milter_ext])
