# make install / make uninstall: the C library (static and shared), its
# headers and pmcore.pc, and pmilter-test with its man page.  The usual
# directory variables apply, and DESTDIR stages the whole tree:
#   make install PREFIX=/usr DESTDIR=$PWD/stage
# `make uninstall` with the same variables removes exactly those files.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL ?= install

PMC_HEADERS := $(notdir $(wildcard libpmcore/include/pmcore/*.h))
# Every installed file and link, relative to DESTDIR, for uninstall.
INSTALLED = $(INCLUDEDIR)/pmcore.h $(PMC_HEADERS:%=$(INCLUDEDIR)/pmcore/%) \
            $(LIBDIR)/libpmcore.a $(LIBDIR)/$(SHLIB_REAL) \
            $(LIBDIR)/$(SHLIB_SONAME) $(LIBDIR)/$(SHLIB_LINK) \
            $(PKGCONFIGDIR)/pmcore.pc $(BINDIR)/pmilter-test \
            $(MANDIR)/man1/pmilter-test.1

.PHONY: install uninstall
install: $(LIB) $(SHLIB) $(PMT)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(PMC_VERSION)|' \
	    libpmcore/pmcore.pc.in >$(BUILD)/pmcore.pc
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR)/pmcore $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 libpmcore/include/pmcore.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 644 $(PMC_HEADERS:%=libpmcore/include/pmcore/%) \
	    $(DESTDIR)$(INCLUDEDIR)/pmcore/
	$(INSTALL) -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SHLIB_REAL) $(DESTDIR)$(LIBDIR)/$(SHLIB_SONAME)
	ln -sf $(SHLIB_SONAME) $(DESTDIR)$(LIBDIR)/$(SHLIB_LINK)
	$(INSTALL) -m 644 $(BUILD)/pmcore.pc $(DESTDIR)$(PKGCONFIGDIR)/
	$(INSTALL) -m 755 $(PMT) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 tools/pmilter-test/pmilter-test.1 $(DESTDIR)$(MANDIR)/man1/

# The include/pmcore folder is ours alone, so it goes too once empty.
uninstall:
	rm -f $(INSTALLED:%=$(DESTDIR)%)
	rmdir $(DESTDIR)$(INCLUDEDIR)/pmcore 2>/dev/null || true

# make install into a stage, a milter built from it with pkg-config, and
# make uninstall (pkg-config: scripts/setup.d/10-c-library.sh).
.PHONY: test-c-library
test-c-library: $(LIB) $(SHLIB) $(PMT)
	BUILD=$(BUILD) tests/install/c-library.sh
test: $(SHLIB) $(PMT)
EXTRA_TESTS += 'env BUILD=$(BUILD) tests/install/c-library.sh'

# The CPAN tarball and the Python sdist: licence, the vendored core with
# its CORE_VERSION, metadata, and each builds away from the repository.
# `make test` runs it after the Python suite has made the venv.
.PHONY: test-dists
test-dists:
	$(PY) -m venv $(BUILD)/venv
	PY=$(CURDIR)/$(BUILD)/venv/bin/python tests/install/dists.sh
EXTRA_TESTS += 'env PY=$(CURDIR)/$(BUILD)/venv/bin/python tests/install/dists.sh'

# The README's install commands, checked: `cpanm ./perl` into a private
# library (`pip install ./python` is what python/run_tests.sh does).
.PHONY: test-install
test-install:
	tests/install/cpanm.sh
EXTRA_TESTS += tests/install/cpanm.sh

# The Python package on each CPython 3.8-3.13 installed here (CI runs it).
.PHONY: test-pythons
test-pythons:
	BUILD=$(CURDIR)/$(BUILD) tests/python-versions.sh
