# tokenway — the two commands of the README, and a few more.
#   make run     build, then start a simulated fleet of 4 model servers and the gateway
#   make test    build (release and ASan+UBSan) and run every test
.PHONY: all setup build build-asan run test test-release test-asan bench bench-micro fuzz format clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
GENERATOR  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
# Paths relative to the checkout in ccache's keys, so another clone reuses the cache.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: setup
	@cmake -S . -B $(ASAN_BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENWAY_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	@scripts/run-default.sh $(BUILD)

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

test-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2 --timeout 900

# Release first, then the sanitizer build; ends with ctest's summary line.
test: test-release test-asan

bench: build
	@scripts/setup.sh --bench
	@bench/overhead.sh $(BUILD)

bench-micro: build
	@$(BUILD)/bench/tokenway-micro-bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

fuzz:
	@scripts/setup.sh --fuzz
	@CXX=clang++ cmake -S . -B build-fuzz $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENWAY_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

format:
	@find src include tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	@rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
