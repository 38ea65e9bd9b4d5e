# tokenway — the two commands of the README, and a few more.
#   make run     build, then start a simulated fleet of 4 model servers and the gateway
#   make test    build (release and ASan+UBSan) and run every test, then the concurrency tests
#                under ThreadSanitizer
.PHONY: all setup build build-asan run test test-release test-asan test-tsan bench bench-micro fuzz \
        format clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
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

# The unit tests whose code is shared between threads (flow control, limiters, access log,
# endpoint state, prefix index and pickers, runtime snapshots, reload and drain of workers under
# load). Only these targets are built under ThreadSanitizer, not the whole tree.
TSAN_TESTS := routing_flow_controller_test routing_prefix_index_test routing_endpoint_state_test \
              routing_picker_test routing_scheduler_picker_test routing_latency_predictor_test \
              governance_limiter_test \
              governance_redis_limiter_test telemetry_access_log_test control_runtime_test \
              gateway_reload_drain_test
empty :=
space := $(empty) $(empty)

test-tsan: setup
	@cmake -S . -B $(TSAN_BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENWAY_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_TESTS)
	@cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j 2 --timeout 900 -R '^($(subst $(space),|,$(TSAN_TESTS)))$$'

# Release first, then the sanitizer builds; ends with ctest's summary line.
test: test-release test-asan test-tsan

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
	@rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
