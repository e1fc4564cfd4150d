# The Perl binding's benchmark: the trivial milter on Sendmail::PMilter
# (libpmcore) against pure-Perl Sendmail::PMilter 1.28 and libmilter C.
#   make bench-perl   knobs: ROUNDS, DURATION, QUICK=1, CALLGRIND=0, CASES
#                     (see bench/perl/run.py); needs
#                     scripts/setup.d/40-pmilter-pp.sh and 20-bench.sh
.PHONY: bench-perl perl-blib

# The XS module the milter loads from perl/blib.
perl-blib: $(LIB)
	cd perl && { [ -f Makefile ] || perl Makefile.PL >/dev/null; } && $(MAKE) >/dev/null

bench-perl: perl-blib bench-c-milters
	$(PY) bench/perl/run.py --build $(BUILD)
