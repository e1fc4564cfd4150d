# make test-tsan: the server suites (the THREADS pool and its lead mode move
# connections and the event loop between threads) and the metrics endpoint
# (served by whichever thread runs the loop) under ThreadSanitizer.
.PHONY: test-tsan
test-tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread" \
	    build-tsan/tests/test_server build-tsan/tests/test_server_eof \
	    build-tsan/tests/test_metrics \
	    build-tsan/tests/test_server_stats build-tsan/tests/test_server_clock \
	    build-tsan/tests/test_server_runhook
	TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_server
	TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_server_eof
	TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_metrics
	TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_server_stats
	TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_server_clock
	TSAN_OPTIONS=halt_on_error=1 build-tsan/tests/test_server_runhook
