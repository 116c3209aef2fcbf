# gpunet — the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here serves them.
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)
space := $(subst ,, )
CMAKE_FLAGS ?=

.PHONY: all deps configure build test test-fast test-asan tsan demo bench sim crash-campaign corpus format format-check lint clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O2 $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# All tests: the format check and the g++ build (-Wshadow on), then the clang ASan+UBSan
# build with bounded fuzzing. Not clang-tidy (make lint, below): too slow for it.
test: test-fast test-asan

test-fast: format-check build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

$(ASAN_BUILD)/build.ninja: | deps
	CC=clang-19 CXX=clang++-19 cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
	  -DGPUNET_SANITIZE=ON -DGPUNET_FUZZ=ON -DGPUNET_BENCH=OFF $(CMAKE_FLAGS)

test-asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

# ThreadSanitizer (clang-19): the unit tests that run threads (the RPC server and
# its clients, the node with its engine and RPC threads over the ledger app, the
# mempool, resident state and the signature cache, storage with its fault layer,
# the provider daemon's engine, bidder, broker and tenant API),
# then the integration tests that start gpunet nodes (kill -9, power cut and the bft
# engine's loop among them).
# Not part of `make test`: from scratch it takes longer than part 1's time budget
# (docs/build.md "Thread safety and ThreadSanitizer"). A report fails the test
# (halt_on_error); tests/tsan.supp names the RocksDB functions it suppresses, each with its reason.
TSAN_TESTS := server_test client_test node_test mempool_test state_test storage_test provider_test
TSAN_INTEGRATION := node_rpc_integration|node_limits_integration|node_kill9_integration|node_powerloss_integration|integration_cli|integration_market|integration_bft_node
# clang-19's runtime does not find Debian's unversioned llvm-symbolizer by itself.
TSAN_SYMBOLIZER := $(addprefix :external_symbolizer_path=,$(firstword $(wildcard /usr/bin/llvm-symbolizer-19 /usr/bin/llvm-symbolizer-14)))
$(TSAN_BUILD)/build.ninja: | deps
	CC=clang-19 CXX=clang++-19 cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
	  -DGPUNET_TSAN=ON -DGPUNET_BENCH=OFF $(CMAKE_FLAGS)

tsan: deps $(TSAN_BUILD)/build.ninja
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_TESTS) gpunet node_tx_helper
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp$(TSAN_SYMBOLIZER) \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 \
	  -R '^($(subst $(space),|,$(TSAN_TESTS))|$(TSAN_INTEGRATION))$$'

demo: build
	@scripts/demo.sh $(BUILD)/bin/gpunet

bench: build
	@scripts/bench.sh $(BUILD)

# The BFT simulator's long campaign: `make sim SEEDS=1000` (replay one: bft_sim --seed S --trace).
SEEDS ?= 200
sim: configure
	cmake --build $(BUILD) --target bft_sim -j $(JOBS)
	$(BUILD)/tests/sim/bft_sim --seeds $(SEEDS)

# The provider daemon's long crash campaign (root): `make crash-campaign KILLS=100`, N random
# SIGKILLs after the fixed crash points (docs/provider.md "Crash safety"); it prints its
# seed first, CRASH_SEED=S replays it.
KILLS ?= 100
crash-campaign: build
	bash tests/integration/provider_crash/provider_crash_test.sh $(BUILD)/bin/gpunet \
	  $(BUILD)/tests/libfake_nvml.so $(KILLS)

# After an intended encoding change: rewrite the generated fuzz seeds in tests/fuzz/corpus/
# and the golden vectors (tools/write_corpus.cpp; it prints the digest golden_test.cpp pins).
corpus: configure
	cmake --build $(BUILD) --target gpunet-write-corpus -j $(JOBS)
	$(BUILD)/bin/gpunet-write-corpus --vectors tests/vectors/encoding/vectors.txt tests/fuzz/corpus

format:
	find src tests bench tools -name '*.h' -o -name '*.cpp' | xargs clang-format -i

# The format check and clang-tidy (scripts/lint.sh); `make lint LINT_PATHS="src/codec src/base"`
# checks part of the tree. clang-tidy over src/ takes over 4 min on 2 cores, more
# than make test can add (docs/build.md "Lint"): run `make lint` before sending a change.
# `make test-fast` runs the format check alone (seconds): format-check.
format-check:
	@scripts/lint.sh --format-only
LINT_PATHS ?=
lint: deps
	@JOBS=$(JOBS) scripts/lint.sh $(LINT_PATHS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
