# A thin wrapper over CMake and the test tools, for the README's two commands. Each target
# first installs the Debian packages it needs and does not find (scripts/install-packages:
# apt-get as root, or through sudo), so both commands work on a bare Debian 12 with only
# make installed; `make test` proves it for `make run` in its fresh-root stage.
#   make run    install the build packages, build (no unit tests), serve with the defaults
#               (embedded); ARGS="..." passes options through
#   make test   install the test packages too, build (release and ASan+UBSan, unit tests
#               required), run every test: the fresh-root stage first, then unit, black-box,
#               stress, distributed, TSan, a short fuzz run
#   make bench  install what is missing, build, run the benchmark against nginx
#   make test-fresh-root  only the fresh-root stage (tests/fresh/run)
#   make status-screenshot  regenerate docs/status-page.png (the live sale view in Chromium)
# The build dir build/ is shared: `make run` configures the unit tests as optional
# (SECKILL_UNIT_TESTS=AUTO), `make test` as required (ON), whichever ran first.

SHELL := /bin/bash
PYTHON := /usr/bin/python3
JOBS := $(shell nproc)

# sqlite3 (the command-line shell) is for the reader: README's Storage section runs it.
BUILD_PACKAGES := cmake make gcc libc6-dev pkg-config libh2o-evloop-dev libh2o-dev-common \
                  libssl-dev libsqlite3-dev libjansson-dev libsodium-dev libhiredis-dev \
                  libmariadb-dev zlib1g-dev sqlite3
# python3-jsonschema: tests/api/openapi_check.py holds every answer to docs/openapi.json.
# nodejs (+ npm below): tests/docs lints that document with @redocly/cli from the npm
# registry, installed into build/tools/redocly. chromium, chromium-driver, python3-selenium
# and a font: the live sale view's browser test (tests/api/test_status_browser.py).
TEST_PACKAGES := libcmocka-dev python3 python3-pytest python3-requests python3-jsonschema \
                 sqlite3 clang libclang-rt-14-dev redis-server mariadb-server docker-compose \
                 debootstrap gdb nodejs chromium chromium-driver python3-selenium \
                 fonts-dejavu-core
# What bench/run and bench/*.py call besides the build: wrk, nginx, sqlite3, curl,
# /usr/bin/python3 with requests and matplotlib (bench/charts.py), /usr/bin/time, pgrep (procps).
BENCH_PACKAGES := wrk nginx-light sqlite3 curl python3 python3-requests python3-matplotlib time \
                  procps

# make run configures the unit tests as optional, make test (and its sanitizer builds) as
# required: missing cmocka is then an error, not unit tests silently left out.
UNIT_TESTS := AUTO

.PHONY: deps deps-test deps-bench build build-asan build-tsan run test test-tsan test-fresh-root \
        stress fuzz-smoke fuzz bench bench-distributed status-screenshot clean

# Targets in order, whatever -j says: `make test -j` would otherwise configure build/ with
# the unit tests required while cmocka is still being installed. Builds use every core
# anyway (cmake --build -j).
.NOTPARALLEL:

deps:
	@scripts/install-packages $(BUILD_PACKAGES)

# Debian's npm only where no npm command exists: a nodejs from nodesource brings its own, and
# Debian's npm package cannot be installed beside it.
deps-test: deps
	@scripts/install-packages $(TEST_PACKAGES)
	@command -v npm >/dev/null || scripts/install-packages npm

deps-bench: deps
	@scripts/install-packages $(BENCH_PACKAGES)

build: deps
	cmake --preset release -DSECKILL_UNIT_TESTS=$(UNIT_TESTS) >/dev/null
	cmake --build --preset release -j $(JOBS)

build-asan: deps-test
	cmake --preset asan -DSECKILL_UNIT_TESTS=ON >/dev/null
	cmake --build --preset asan -j $(JOBS)

build-tsan: deps-test
	cmake --preset tsan -DSECKILL_UNIT_TESTS=ON >/dev/null
	cmake --build --preset tsan -j $(JOBS)

run: build
	./build/seckill $(ARGS)

# First the fresh-root stage: `make run` on a bare Debian root, first because it is the
# README's first promise, needs nothing built here, and fails in minutes where the suites
# after it take half an hour. Then unit tests and black-box tests (API, hostile clients,
# JMeter plan, crash matrix; every answer checked against docs/openapi.json, which
# tests/docs lints) against the release build, for both deployments (the
# distributed one on Redis and MariaDB servers the tests start themselves), then the same
# against ASan+UBSan and against TSan, then a short fuzz run of every parser.
# --no-tests=error: a build dir without unit tests fails instead of passing on nothing.
DISTRIBUTED := SECKILL_DEPLOYMENT=distributed
test: deps-test
	$(MAKE) --no-print-directory test-fresh-root
	$(MAKE) --no-print-directory build build-asan UNIT_TESTS=ON
	cd build && ctest --no-tests=error --output-on-failure
	cd build-asan && ctest --no-tests=error --output-on-failure
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/backends tests/deploy tests/docs tests/fresh
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
	cd build-tsan && $(TSAN_ENV) ctest --no-tests=error --output-on-failure
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

# A bare Debian root (debootstrap minbase bookworm, cached in /var/cache/seckill-fresh-root)
# with only make installed runs `make run` from `git archive HEAD` until /healthz answers.
test-fresh-root:
	tests/fresh/run

# The browser test of the live sale view writes its screenshot here too (the suite alone
# keeps it in its temporary directory, so that no run changes the checkout).
status-screenshot: deps-test build
	SECKILL_BIN=$(CURDIR)/build/seckill SECKILL_STATUS_SCREENSHOT=$(CURDIR)/docs/status-page.png \
	    $(PYTHON) -m pytest -q -p no:cacheprovider tests/api/test_status_browser.py -k follows

bench: deps-bench build
	bench/run

# The same benchmark against the distributed deployment (Redis with one replica + MariaDB
# started for it), once without waiting for the replica and once with
# --redis-wait-replicas 1, both as ratios to nginx in one report (issue 15).
# `make bench-distributed WAIT_REPLICAS=0` runs only the first.
WAIT_REPLICAS ?= 0 1
bench-distributed: deps-bench deps-test build
	DEPLOYMENT=distributed REDIS_REPLICAS=1 WAIT_REPLICAS="$(WAIT_REPLICAS)" bench/run

clean:
	rm -rf build build-asan build-debug build-tsan
