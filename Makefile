# The two commands a newcomer needs:  make run  |  make test
# Both install missing Debian packages first (tools/setup.sh), then build.

JOBS ?= $(shell nproc)
# ccache: paths relative to the checkout, so clones in other folders share hits.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
CONFIG ?= examples/quickstart.yaml
LEGATE_ARGS ?=

.PHONY: all setup build build-asan build-pgo run test test-unit test-asan bench bench-smoke clean

all: build

setup:
	@tools/setup.sh

build: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-asan: setup
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)

# A profile-guided build (bench/pgo.py): instrumented build, a short training
# run on the benchmark's traffic (needs nginx and wrk, which setup installs),
# rebuild with the profile. Result: build/pgo/legate. Two builds: slower.
build-pgo: setup
	@python3 bench/pgo.py

run: build
	@echo
	@echo "legate is starting on $(CONFIG). In another terminal try:"
	@echo "  curl -s localhost:9901/ready                 # admin: readiness"
	@echo "  curl -s localhost:9901/stats/prometheus      # admin: stats"
	@echo "  curl -s localhost:10000/                     # the HTTP listener: a direct response"
	@echo "  curl -s localhost:10000/admin/server_info    # proxied over HTTP/1.1 to the admin port"
	@echo "Stop it with Ctrl-C."
	@echo
	@build/release/legate -c $(CONFIG) $(LEGATE_ARGS)

# Unit tests under AddressSanitizer + UBSan, then every test (unit and
# integration) on the release build; ctest's summary closes the output.
test: build build-asan
	@ctest --preset asan -j $(JOBS)
	@ctest --preset release -j $(JOBS)

# Side-by-side benchmark against nginx and HAProxy (bench/README.md); a few minutes.
# Results: bench/results/ (JSON + Markdown). bench-smoke: seconds, no thresholds.
bench: build
	@python3 bench/run.py $(BENCH_ARGS)

bench-smoke: build
	@python3 bench/run.py --smoke

clean:
	rm -rf build
