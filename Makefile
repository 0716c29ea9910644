# A thin wrapper over CMake and the test tools, for the README's two commands.
#   make run    install what is missing, build, serve with the defaults (embedded)
#   make test   install what is missing, build (release and ASan+UBSan), run every test
#   make bench  install what is missing, build, run the benchmark against nginx

SHELL := /bin/bash
PYTHON := /usr/bin/python3
JOBS := $(shell nproc)

BUILD_PACKAGES := cmake make gcc pkg-config libh2o-evloop-dev libh2o-dev-common libssl-dev \
                  libsqlite3-dev libjansson-dev libsodium-dev libhiredis-dev libmariadb-dev
TEST_PACKAGES := libcmocka-dev python3-pytest python3-requests sqlite3 clang libclang-rt-14-dev \
                 redis-server mariadb-server docker-compose
BENCH_PACKAGES := wrk nginx-light

.PHONY: deps deps-test deps-bench build build-asan build-tsan run test test-tsan stress fuzz-smoke fuzz bench bench-distributed clean

deps:
	@scripts/install-packages $(BUILD_PACKAGES)

deps-test: deps
	@scripts/install-packages $(TEST_PACKAGES)

deps-bench: deps
	@scripts/install-packages $(BENCH_PACKAGES)

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

build-asan: deps-test
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

build-tsan: deps-test
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j $(JOBS)

run: build
	./build/seckill $(ARGS)

# Unit tests and black-box tests (API, hostile clients, JMeter plan, crash matrix) against
# the release build, for both deployments (the distributed one on Redis and MariaDB servers
# the tests start themselves), then the same against ASan+UBSan and against TSan, then a
# short fuzz run of every parser.
DISTRIBUTED := SECKILL_DEPLOYMENT=distributed
test: deps-test build build-asan
	cd build && ctest --output-on-failure
	cd build-asan && ctest --output-on-failure
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/backends tests/deploy
	SECKILL_BIN=$(CURDIR)/build/seckill $(PYTHON) -m pytest -q tests/api tests/stress
	SECKILL_BIN=$(CURDIR)/build/seckill $(DISTRIBUTED) $(PYTHON) -m pytest -q tests/api tests/stress tests/distributed
	SECKILL_BIN=$(CURDIR)/build-asan/seckill SECKILL_SANITIZED=1 $(PYTHON) -m pytest -q tests/api tests/stress
	SECKILL_BIN=$(CURDIR)/build-asan/seckill SECKILL_SANITIZED=1 $(DISTRIBUTED) $(PYTHON) -m pytest -q tests/api tests/stress tests/distributed
	$(MAKE) --no-print-directory test-tsan
	$(MAKE) --no-print-directory fuzz-smoke

# The same suites under ThreadSanitizer. Servers killed with kill -9 never report an exit
# status, so their logs are searched for reports too.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp"
test-tsan: build-tsan
	cd build-tsan && $(TSAN_ENV) ctest --output-on-failure
	rm -rf build-tsan/pytest build-tsan/pytest-distributed
	SECKILL_BIN=$(CURDIR)/build-tsan/seckill SECKILL_SANITIZED=1 $(TSAN_ENV) \
	    $(PYTHON) -m pytest -q -p no:cacheprovider --basetemp=$(CURDIR)/build-tsan/pytest tests/api tests/stress
	SECKILL_BIN=$(CURDIR)/build-tsan/seckill SECKILL_SANITIZED=1 $(TSAN_ENV) $(DISTRIBUTED) \
	    $(PYTHON) -m pytest -q -p no:cacheprovider --basetemp=$(CURDIR)/build-tsan/pytest-distributed \
	    tests/api tests/distributed
	@if grep -rl "WARNING: ThreadSanitizer" build-tsan/pytest build-tsan/pytest-distributed; then \
	    echo "ThreadSanitizer reports in the server logs above"; exit 1; fi

# The full crash matrix (25 rounds of grab load + kill -9 or SIGTERM); `make test` runs 3.
stress: deps-test build
	SECKILL_BIN=$(CURDIR)/build/seckill SECKILL_CRASH_ROUNDS=25 $(PYTHON) -m pytest -q tests/stress

# Each fuzz target for a short run (FUZZ_SECONDS, default 20); `make fuzz FUZZ_SECONDS=600`
# for a long one.
FUZZ_SECONDS ?= 20
fuzz-smoke fuzz: deps-test
	tests/fuzz/run $(FUZZ_SECONDS)

bench: deps-bench build
	bench/run

# The same benchmark against the distributed deployment (Redis + MariaDB started for it).
bench-distributed: deps-bench deps-test build
	DEPLOYMENT=distributed bench/run

clean:
	rm -rf build build-asan build-debug build-tsan
