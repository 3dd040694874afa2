# malfam - one flat Makefile. Outputs go to $(BUILD) (default build/), so several builds
# (plain, asan) can live side by side: make BUILD=build/asan ...
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
MF_DATA ?= $(abspath ../shared/data)
PREFIX  ?= /usr/local
export MF_DATA

PKGS    := yajl libuv inih zlib
DEB_PKGS := build-essential pkg-config libyajl-dev yajl-tools libuv1-dev check libopenblas-dev \
            libinih-dev zlib1g-dev python3 python3-pytest time
# BLAS: Debian 12 ships openblas.pc (libopenblas-dev); fall back to plain -lopenblas.
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

OPT     ?= -O2 -g
CFLAGS  := $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP -Icore -Iplugin \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(BLAS_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(BLAS_LIBS) -lpthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CORE_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(wildcard core/*.c))
UTIL_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugin/util_*.c))
CLI_OBJ    := $(patsubst %.c,$(BUILD)/%.o,plugin/malfam.c $(wildcard plugin/cli_*.c))
DAEMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugin/mfd_*.c))
CHECK_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/check_*.c))
BENCH_BIN  := $(patsubst bench/%.c,$(BUILD)/%,$(wildcard bench/bench_*.c))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
LIB        := $(BUILD)/libmalfam.a

.PHONY: all deps check check-unit check-integration check-python asan valgrind bench demo \
        fuzz clean install
all: $(LIB) $(BUILD)/malfam $(BUILD)/malfamd

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/malfam: $(CLI_OBJ) $(UTIL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/malfamd: $(BUILD)/plugin/malfamd.o $(DAEMON_OBJ) $(UTIL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/check_all: $(CHECK_OBJ) $(DAEMON_OBJ) $(UTIL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench_%: $(BUILD)/bench/bench_%.o $(DAEMON_OBJ) $(UTIL_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets as plain corpus replayers (no libFuzzer needed): tests/fuzz/fuzz_<x>.c
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(DAEMON_OBJ) $(UTIL_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c,$^) $(filter-out %.c,$^) $(LDLIBS)

deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else echo "deps: all installed"; fi

check: all check-unit check-integration check-python

check-unit: $(BUILD)/check_all
	$(BUILD)/check_all

check-integration: all $(patsubst %.c,$(BUILD)/fuzz_%,$(notdir $(basename $(FUZZ_SRC))))
	@set -e; for t in tests/integration/*.sh; do [ -e "$$t" ] || continue; \
	  echo "== $$t"; BUILD=$(BUILD) PYTHON=$(PYTHON) bash $$t; done

check-python: all
	@if ls tests/python/test_*.py >/dev/null 2>&1; then \
	  BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/python; fi

# The same suites under AddressSanitizer + UBSan, in their own build directory.
asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=all" EXTRA_LDFLAGS="-fsanitize=address,undefined" \
	  check-unit check-integration

valgrind: $(BUILD)/check_all
	CK_FORK=no valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	  $(BUILD)/check_all

bench: all $(BENCH_BIN)
	BUILD=$(BUILD) PYTHON=$(PYTHON) bash bench/run.sh

demo: deps
	$(MAKE) all
	BUILD=$(BUILD) PYTHON=$(PYTHON) bash plugin/demo.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# libFuzzer (clang): core/ and plugin/ rebuilt from source with coverage, ASan and UBSan into
# build/fuzz, one binary per tests/fuzz/fuzz_<x>.c in build/fuzz/bin, each run FUZZ_SECONDS s by
# tests/fuzz/run.sh (executions and crashes per target; crash inputs go to tests/fuzz/regress/).
# clang warnings are shown but not fatal here: the gcc builds keep -Werror.
FUZZ_SECONDS ?= 10
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

# plugin objects as an archive, so a target links only the members it uses
$(BUILD)/fuzz-plugin.a: $(DAEMON_OBJ) $(UTIL_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/bin/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/fuzz-plugin.a $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	  EXTRA_CFLAGS=-Wno-error EXTRA_LDFLAGS="$(FUZZ_SAN)" \
	  $(patsubst %,$(FUZZ_BUILD)/bin/%,$(notdir $(basename $(FUZZ_SRC))))
	BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh \
	  $(notdir $(basename $(FUZZ_SRC)))
