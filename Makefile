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

CPPFLAGS += -D_GNU_SOURCE -Idsp -Imodel -Itools/lib
CFLAGS  += -std=c11 $(OPT) -g -fPIC $(WARN) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS  += -lm

# ---- dsp: the layers and networks (libm only) -------------------------------------------
DSP_SRC := $(wildcard dsp/*.c)
DSP_OBJ := $(DSP_SRC:%.c=$(BUILD)/%.o)
DSP_LIB := $(BUILD)/libconvd_dsp.a

# ---- model: file formats into dsp models (jansson) ----------------------------------------
MODEL_SRC := $(wildcard model/*.c)
MODEL_OBJ := $(MODEL_SRC:%.c=$(BUILD)/%.o)
MODEL_LIB := $(BUILD)/libconvd_model.a
MODEL_LIBS:= -ljansson

# tools read and write audio files with libsndfile
TOOL_LIBS := $(MODEL_LIBS) -lsndfile

# ---- tools: one program per tools/*.c, sharing tools/lib (audio files, arguments) --------
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/%)
TOOLLIB_SRC := $(wildcard tools/lib/*.c)
TOOLLIB_OBJ := $(TOOLLIB_SRC:%.c=$(BUILD)/%.o)
TOOLLIB := $(BUILD)/libconvd_tools.a

# ---- tests ------------------------------------------------------------------------------
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(BUILD)/convd-tests

# ---- benchmarks -------------------------------------------------------------------------
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all test run bench clean deps format
.SECONDARY:
.DEFAULT_GOAL := all

all: $(DSP_LIB) $(MODEL_LIB) $(TOOLLIB) $(TOOL_BIN) $(TEST_BIN) $(BENCH_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(DSP_LIB): $(DSP_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# The tests count allocations: every malloc-family call linked into the test binary (the
# libraries included) goes through tests/alloc_count.c.
TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign

$(MODEL_LIB): $(MODEL_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(TEST_BIN): $(TEST_OBJ) $(TOOLLIB) $(MODEL_LIB) $(DSP_LIB)
	$(CC) $(LDFLAGS) $(TEST_WRAP) $(TEST_OBJ) $(TOOLLIB) $(MODEL_LIB) $(DSP_LIB) -o $@ -lcriterion $(TOOL_LIBS) $(LDLIBS)

$(TOOLLIB): $(TOOLLIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/%: $(BUILD)/tools/%.o $(TOOLLIB) $(MODEL_LIB) $(DSP_LIB)
	$(CC) $(LDFLAGS) $< $(TOOLLIB) $(MODEL_LIB) $(DSP_LIB) -o $@ $(TOOL_LIBS) $(LDLIBS)

$(BUILD)/bench/%: tests/bench/%.c $(MODEL_LIB) $(DSP_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(MODEL_LIB) $(DSP_LIB) -o $@ $(LDFLAGS) $(TOOL_LIBS) $(LDLIBS)

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
	clang-format -i dsp/*.[ch] model/*.[ch] tools/*.c tools/lib/*.[ch] tests/*.[ch] tests/bench/*.[ch]

clean:
	rm -rf build build-san

-include $(DSP_OBJ:.o=.d) $(MODEL_OBJ:.o=.d) $(TOOLLIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(TOOL_SRC:%.c=$(BUILD)/%.d)
