# The two commands of the README: `make run` (the study) and `make test` (the test suite).
# Each installs the missing Debian packages first, then builds with CMake into build/.
BUILD ?= build
JOBS ?= 2

.PHONY: run test build deps deps-test clean

run: deps build
	mkdir -p out
	./$(BUILD)/fnn train --out out/study.safetensors

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

deps:
	scripts/install-deps.sh run

deps-test:
	scripts/install-deps.sh test

clean:
	rm -rf $(BUILD) out
