"""Build the `milter` extension with libpmcore compiled in.

The core's sources come from ../libpmcore in the repository, copied into
libpmcore_vendor/ on every run by ../scripts/vendor-core.sh (the script
that vendors the core into the Perl distribution too), or from
libpmcore_vendor/ inside an sdist, so an sdist builds on its own and no
system library is needed.  libpmcore_vendor/CORE_VERSION names the core
commit the copy came from.
"""
import glob
import os
import subprocess
import sys

import setuptools
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
VENDOR_SCRIPT = os.path.join(HERE, '..', 'scripts', 'vendor-core.sh')
REPO_CORE = os.path.join(HERE, '..', 'libpmcore')
VENDOR = 'libpmcore_vendor'

# Setuptools mishandles sources named with "../" (an sdist copies them
# out of its release tree, object files land outside build/), so the core
# is always compiled from a copy inside the package tree: refreshed from
# ../libpmcore on every run in the repository (one source of truth), and
# shipped as is in the sdist, which then builds on its own.
if (os.path.isfile(VENDOR_SCRIPT)
        and os.path.isfile(os.path.join(REPO_CORE, 'include', 'pmcore.h'))):
    subprocess.check_call(['sh', VENDOR_SCRIPT, os.path.join(HERE, VENDOR)])
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

# The licence is BSD-2-Clause.  Setuptools 77 and later write it as an SPDX
# License-Expression (PEP 639) and refuse a "License ::" classifier beside
# it; they need Python 3.9, so on 3.8 (setuptools 75 at most) the same
# identifier goes in the older License field.  pyproject.toml therefore
# lists the licence as dynamic.
if int(setuptools.__version__.split('.')[0]) >= 77:
    license_kw = {'license_expression': 'BSD-2-Clause'}
else:
    license_kw = {'license': 'BSD-2-Clause'}

setup(ext_modules=[milter_ext], **license_kw)
