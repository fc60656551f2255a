# convd - streaming neural DSP engine.
#
#   make            build everything (libraries, tools, daemon)
#   make test       install missing dependencies, build, run every test
#   make run        install missing dependencies, build, start a demonstration
#   make bench      build and run the benchmarks (never part of the tests)
#   make clean
#
# Switches: SAN=address,undefined   build and test under the sanitizers (in build-san/)
#           WERROR=1                warnings are errors (CI)
#           OPT=-O0                 override optimisation

CC      ?= cc
OPT     ?= -O2
SAN     ?=
WERROR  ?=
PYTHON  ?= /usr/bin/python3

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifneq ($(WERROR),)
WARN    += -Werror
endif

ifneq ($(SAN),)
BUILD   := build-san
SANFLAGS:= -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS:=
endif

CPPFLAGS += -D_GNU_SOURCE -Idsp
CFLAGS  += -std=c11 $(OPT) -g -fPIC $(WARN) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS  += -lm

# ---- dsp: the layers and networks (libm only) -------------------------------------------
DSP_SRC := $(wildcard dsp/*.c)
DSP_OBJ := $(DSP_SRC:%.c=$(BUILD)/%.o)
DSP_LIB := $(BUILD)/libconvd_dsp.a

# ---- tools ------------------------------------------------------------------------------
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/%)

# ---- tests ------------------------------------------------------------------------------
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(BUILD)/convd-tests

# ---- benchmarks -------------------------------------------------------------------------
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all test run bench clean deps format
.DEFAULT_GOAL := all

all: $(DSP_LIB) $(TOOL_BIN) $(TEST_BIN) $(BENCH_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(DSP_LIB): $(DSP_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# The tests count allocations: every malloc-family call linked into the test binary (the
# libraries included) goes through tests/alloc_count.c.
TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign

$(TEST_BIN): $(TEST_OBJ) $(DSP_LIB)
	$(CC) $(LDFLAGS) $(TEST_WRAP) $(TEST_OBJ) $(DSP_LIB) -o $@ -lcriterion $(LDLIBS)

$(BUILD)/%: tools/%.c $(DSP_LIB)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(DSP_LIB) -o $@ $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: tests/bench/%.c $(DSP_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(DSP_LIB) -o $@ $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: tests/bench/benchutil.h

deps:
	@scripts/install-deps.sh --quiet

# Criterion runs every test in its own process, in parallel; tests read tests/data and
# ../shared/models relative to the top of the tree.
test: deps
	@$(MAKE) --no-print-directory $(TEST_BIN)
	./$(TEST_BIN) $(TESTFLAGS)

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; ./$$b || exit 1; done

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/convd-demo

format:
	clang-format -i dsp/*.[ch] tools/*.c tests/*.[ch] tests/bench/*.[ch]

clean:
	rm -rf build build-san

-include $(DSP_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
