# The two commands of the README: `make run` (the study) and `make test` (the test suite).
# Each installs the missing Debian packages first, then builds with CMake into build/: `make run`
# only what the study needs, `make test` the tests too (TESTS=ON). Either may follow the other.
# GEMM picks the library for matrix products: dnnl (oneDNN, the default) or openblas, e.g.
# `make run GEMM=openblas`; see README.md, "Matrix products".
BUILD ?= build
JOBS ?= 2
GEMM ?= dnnl
TESTS ?= OFF
# `make test`'s other builds: the other library for matrix products (OpenBLAS), and ASan +
# UBSan, valgrind's (no -march=native) and the fuzzers, which use OpenBLAS too: its code is
# compiled ahead of time, where the tools can see into it, while oneDNN generates its kernels at
# run time.
SAN_BUILD ?= $(BUILD)-sanitize
OPENBLAS_BUILD ?= $(BUILD)-openblas
VG_BUILD ?= $(BUILD)-valgrind
FUZZ_BUILD ?= $(BUILD)/fuzz
FUZZ_SECONDS ?= 20

.PHONY: run test test-plain test-openblas test-sanitize test-valgrind test-fuzz build deps deps-test clean ort

run: deps build
	mkdir -p out
	./$(BUILD)/fnn train --out out/study.safetensors

# Everything CI runs (.ci/run), each part timed in the log.
test: deps-test
	$(MAKE) --no-print-directory build TESTS=ON
	$(MAKE) --no-print-directory ort
	scripts/timed.sh "test suite" $(MAKE) --no-print-directory test-plain
	scripts/timed.sh "test suite with OpenBLAS's products" $(MAKE) --no-print-directory test-openblas
	scripts/timed.sh "test suite under ASan and UBSan" $(MAKE) --no-print-directory test-sanitize
	scripts/timed.sh "fnn train under valgrind" $(MAKE) --no-print-directory test-valgrind
	scripts/timed.sh "fuzzers" $(MAKE) --no-print-directory test-fuzz

test-plain:
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -j$(JOBS)

test-openblas:
	cmake -S . -B $(OPENBLAS_BUILD) -DCMAKE_BUILD_TYPE=Release -DFNN_GEMM=openblas -DFNN_TESTS=ON
	cmake --build $(OPENBLAS_BUILD) -j$(JOBS)
	cd $(OPENBLAS_BUILD) && ctest --output-on-failure --no-tests=error -j$(JOBS)

test-sanitize:
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Release -DFNN_GEMM=openblas -DFNN_SANITIZE=ON \
	    -DFNN_TESTS=ON
	cmake --build $(SAN_BUILD) -j$(JOBS)
	cd $(SAN_BUILD) && LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp \
	    UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure --no-tests=error -j$(JOBS)

test-valgrind:
	JOBS=$(JOBS) scripts/valgrind-train.sh $(VG_BUILD)

test-fuzz:
	JOBS=$(JOBS) fuzz/ci.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFNN_GEMM=$(GEMM) -DFNN_TESTS=$(TESTS)
	cmake --build $(BUILD) -j$(JOBS)

deps:
	scripts/install-deps.sh run $(GEMM)

deps-test:
	scripts/install-deps.sh test

# onnxruntime-node for tests/test_onnx_runtimes.sh, from the npm registry into $(BUILD)/ort, without
# its install script (which fetches GPU builds): the package carries its CPU binary for Linux.
# npm is told to trust the system's certificate authorities (ca-certificates, with any the
# machine's administrator added), not only the ones Node carries.
ORT_VERSION ?= 1.20.1
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
ort: $(BUILD)/ort/node_modules/onnxruntime-node/package.json
$(BUILD)/ort/node_modules/onnxruntime-node/package.json:
	npm install --prefix $(BUILD)/ort --ignore-scripts --no-audit --no-fund \
	    $(if $(wildcard $(CA_BUNDLE)),--cafile $(CA_BUNDLE)) onnxruntime-node@$(ORT_VERSION)

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(VG_BUILD) $(OPENBLAS_BUILD) out

# ---- installation (issue 17)
# `make install PREFIX=DIR` builds, then installs the fnn tool, libfnn.so, libfnn.a, fnn.h and
# the pkg-config file fnn.pc under DIR; DESTDIR=STAGE puts them under STAGE/DIR for a package.
PREFIX ?= /usr/local
.PHONY: install
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)
