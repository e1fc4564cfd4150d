# libpmcore as a shared library beside build/libpmcore.a, for C programs
# that link the system's copy (`make install`, mk/install.mk).  The bindings
# keep compiling the core into themselves.
#
# PMC_SOVERSION is the ABI's major number: bump it (and the version node in
# libpmcore/libpmcore.map) when a release breaks callers built against the
# previous one; libpmcore/CHANGES says when.
PMC_VERSION := $(shell sed -n 's/^\#define PMC_VERSION_STRING "\(.*\)"/\1/p' \
                 libpmcore/include/pmcore/base.h)
PMC_SOVERSION := 0
SHLIB_LINK := libpmcore.so
SHLIB_SONAME := $(SHLIB_LINK).$(PMC_SOVERSION)
SHLIB_REAL := $(SHLIB_LINK).$(PMC_VERSION)
SHLIB := $(BUILD)/$(SHLIB_REAL)
PMC_MAP := libpmcore/libpmcore.map

all: $(SHLIB)

# --no-undefined: the library names everything it needs (a sanitizer
# build leaves its runtime's symbols to the program, so not there).
$(SHLIB): $(LIB_OBJS) $(PMC_MAP)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,$(SHLIB_SONAME) \
	    -Wl,--version-script=$(PMC_MAP) $(if $(SAN),,-Wl,--no-undefined) \
	    $(SAN) -pthread $(LIB_OBJS) -o $@
	ln -sf $(SHLIB_REAL) $(BUILD)/$(SHLIB_SONAME)
	ln -sf $(SHLIB_SONAME) $(BUILD)/$(SHLIB_LINK)
