# SPDX-License-Identifier: Apache-2.0
# convd - streaming neural DSP engine.
#
#   make            build everything (libraries, tools, daemon)
#   make test       install missing dependencies, build, run every test
#   make run        install missing dependencies, build, start a demonstration
#   make bench      build and run the benchmarks (never part of the tests)
#   make check-includes  no .c includes, no include cycle, the layers kept
#   make soak       healthy clients beside hostile traffic, SOAK_SECONDS (600): figures
#   make fuzz       fuzz the parsers with libFuzzer (clang; FUZZ_SECONDS per target)
#   make test-arm64 the aarch64 build's dsp and model tests under qemu-user (CI runs it)
#   make clean
#
# Switches: SAN=address,undefined   build and test under the sanitizers (in build-san/)
#           SAN=thread              build and test under ThreadSanitizer (in build-tsan/)
#           WERROR=1                warnings are errors (CI)
#           OPT=-O0                 override optimisation (DSP_OPT: the dsp library's, -O3)

CC      ?= cc
OPT     ?= -O2
SAN     ?=
WERROR  ?=
PYTHON  ?= /usr/bin/python3

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifneq ($(WERROR),)
WARN    += -Werror
endif

ifeq ($(SAN),thread)
# ThreadSanitizer: its own build (it cannot be combined with ASan); see tests/tsan.supp
BUILD   := build-tsan
SANFLAGS:= -fsanitize=thread -fno-omit-frame-pointer
else ifneq ($(SAN),)
BUILD   := build-san
SANFLAGS:= -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS:=
endif

CPPFLAGS += -D_GNU_SOURCE -Idsp -Imodel -Iproto -Itools/lib -Iserver -Iclient -I$(BUILD)/gen $(HDF5_CFLAGS)
CFLAGS  += -std=c11 $(OPT) -g -fPIC $(WARN) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
# the dsp library's own dependencies: FFTW (long convolutions), libsamplerate (resampling),
# pthreads (a WaveNet on two threads)
DSP_LIBS:= -lfftw3f -lsamplerate -lpthread
LDLIBS  += $(DSP_LIBS) -lm

# The release (debian/changelog's version too; a test compares them).
VERSION := 0.1.0

# ---- dsp: the layers and networks (libm, FFTW, libsamplerate) ---------------------------
DSP_SRC := $(wildcard dsp/*.c)
DSP_OBJ := $(DSP_SRC:%.c=$(BUILD)/%.o)
DSP_LIB := $(BUILD)/libconvd_dsp.a
# the dsp library at -O3: the portable kernels' loops (runtime trip counts) vectorise only
# there, twice the speed where there is no AVX2 (ARM boards); the results are the same (no
# fast-math, and -std=c11 does not contract to FMAs)
DSP_OPT ?= -O3
# on aarch64 the portable kernels' a * b + c are fused multiply-adds (NEON's fmla: twice the
# multiply-add rate); GCC's default outside ISO C mode, not fast-math; x86's baseline has none
ifneq ($(filter aarch64%,$(shell $(CC) -dumpmachine 2>/dev/null)),)
DSP_OPT += -ffp-contract=fast
endif
$(DSP_OBJ): OPT = $(DSP_OPT)

# ---- model: file formats into dsp models (jansson; libsndfile for impulse responses) ------
MODEL_SRC := $(wildcard model/*.c)
MODEL_OBJ := $(MODEL_SRC:%.c=$(BUILD)/%.o)
MODEL_LIB := $(BUILD)/libconvd_model.a
# Keras files: .keras is a zip (libzip) holding HDF5 (libhdf5: Debian's serial build, found
# through pkg-config; the high-level library opens an HDF5 image in memory)
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS   := $(shell pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5) -lhdf5_hl
MODEL_LIBS:= -ljansson -lzip $(HDF5_LIBS) -lsndfile

# TLS (OpenSSL): the daemon's listeners and the client library
TLS_LIBS := -lssl -lcrypto

# ---- proto: the wire codecs (raw, line, framed, sample formats, text); no I/O, no libuv ----
# linked by the daemon, the client library and the tools alike
PROTO_SRC := $(wildcard proto/*.c)
PROTO_OBJ := $(PROTO_SRC:%.c=$(BUILD)/%.o)
PROTO_LIB := $(BUILD)/libconvd_proto.a

# tools read and write audio files with libsndfile, and draw plots with cairo (convd-info --plot)
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo fontconfig 2>/dev/null || echo -I/usr/include/cairo)
CAIRO_LIBS   := $(shell pkg-config --libs cairo fontconfig 2>/dev/null || echo -lcairo -lfontconfig)
# NATS JetStream (libnats): the [nats] transport and convd-nats
NATS_LIBS := -lnats
TOOL_LIBS := $(MODEL_LIBS) -lsndfile $(TLS_LIBS) $(CAIRO_LIBS) $(NATS_LIBS) -lpthread
$(BUILD)/tools/lib/canvas.o $(BUILD)/tests/test_plot.o: CPPFLAGS += $(CAIRO_CFLAGS)

# ---- server: the daemon (libuv, inih, systemd); server/main.c is the program ---------------
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/builtin_models.o
BUILTIN_MODELS := $(sort $(wildcard config/models/*.json))
SERVER_LIB := $(BUILD)/libconvd_server.a
SERVER_LIBS:= -luv -linih -lsystemd -lportaudio -lpthread $(TLS_LIBS) $(NATS_LIBS)
DAEMON     := $(if $(wildcard server/main.c),$(BUILD)/convd)
# The same daemon with test hooks (-DCVD_TEST_HOOKS: CONVD_TEST_SLOW_CALLBACK slows the audio
# callback, for the xrun tests); never installed. The release daemon has no such code.
DAEMON_TESTHOOKS := $(if $(wildcard server/audio.c),$(BUILD)/convd-testhooks)

# ---- client: the framed protocol's client library (plain sockets; the codec is proto's) ---
CLIENT_SRC := $(wildcard client/*.c)
CLIENT_OBJ := $(CLIENT_SRC:%.c=$(BUILD)/%.o)
CLIENT_LIB := $(BUILD)/libconvd_client.a

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
# the soak: healthy clients beside hostile traffic (make soak; a 60 s run in the tests)
SOAK_BIN := $(BUILD)/convd-soak
SOAK_SECONDS ?= 600

BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all programs test test-arm64 run bench soak fuzz clean deps format format-check install uninstall FORCE check-includes
.SECONDARY:
.DEFAULT_GOAL := all

# the daemon and the tools only (what `make install` and the Debian package need)
programs: $(DAEMON) $(TOOL_BIN)

all: $(DSP_LIB) $(MODEL_LIB) $(PROTO_LIB) $(TOOLLIB) $(CLIENT_LIB) $(SERVER_LIB) $(DAEMON) $(TOOL_BIN) $(TEST_BIN) $(BENCH_BIN) $(SOAK_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(DSP_LIB): $(DSP_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

# The tests count allocations: every malloc-family call linked into the test binary (the
# libraries included) goes through tests/alloc_count.c.
TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign

$(MODEL_LIB): $(MODEL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(PROTO_LIB): $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

# the demo models, compiled into the daemon
$(BUILD)/gen/builtin_models.c: $(BUILTIN_MODELS) scripts/embed-models.sh
	@mkdir -p $(dir $@)
	scripts/embed-models.sh $@ $(BUILTIN_MODELS)

$(BUILD)/gen/builtin_models.o: $(BUILD)/gen/builtin_models.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(SERVER_LIB): $(SERVER_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(CLIENT_LIB): $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(DAEMON): $(BUILD)/server/main.o $(SERVER_LIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB)
	$(CC) $(LDFLAGS) $< $(SERVER_LIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB) -o $@ $(SERVER_LIBS) $(MODEL_LIBS) $(LDLIBS)

TESTHOOKS_OBJ := $(BUILD)/server/audio-testhooks.o $(BUILD)/server/audio_engine-testhooks.o
$(BUILD)/server/%-testhooks.o: server/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DCVD_TEST_HOOKS $(CFLAGS) -c $< -o $@

# the -testhooks objects come before the library, so the library's audio.o and
# audio_engine.o are not linked
$(DAEMON_TESTHOOKS): $(BUILD)/server/main.o $(TESTHOOKS_OBJ) $(SERVER_LIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB)
	$(CC) $(LDFLAGS) $(BUILD)/server/main.o $(TESTHOOKS_OBJ) $(SERVER_LIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB) -o $@ $(SERVER_LIBS) $(MODEL_LIBS) $(LDLIBS)

# The tests run the programs (daemon, tools) too, so they build first.
$(TEST_BIN): $(TEST_OBJ) $(SERVER_LIB) $(CLIENT_LIB) $(TOOLLIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB) $(DAEMON) $(DAEMON_TESTHOOKS) $(TOOL_BIN) $(SOAK_BIN)
	$(CC) $(LDFLAGS) $(TEST_WRAP) $(TEST_OBJ) $(SERVER_LIB) $(CLIENT_LIB) $(TOOLLIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB) -o $@ -lcriterion $(SERVER_LIBS) $(TOOL_LIBS) $(LDLIBS)

$(TOOLLIB): $(TOOLLIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/%: $(BUILD)/tools/%.o $(TOOLLIB) $(CLIENT_LIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB)
	$(CC) $(LDFLAGS) $< $(TOOLLIB) $(CLIENT_LIB) $(PROTO_LIB) $(MODEL_LIB) $(DSP_LIB) -o $@ $(TOOL_LIBS) $(LDLIBS)

$(BUILD)/bench/%: tests/bench/%.c $(MODEL_LIB) $(DSP_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(MODEL_LIB) $(DSP_LIB) -o $@ $(LDFLAGS) $(TOOL_LIBS) $(LDLIBS)

$(BUILD)/bench/%: tests/bench/benchutil.h tests/bench/peak.h tests/bench/chain.h tests/bench/loadgen.h

# the soak speaks TLS through server/tls.c (libconvd_server.a)
$(SOAK_BIN): tests/soak/soak.c $(SERVER_LIB) $(MODEL_LIB) $(DSP_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(SERVER_LIB) $(MODEL_LIB) $(DSP_LIB) -o $@ $(LDFLAGS) $(TOOL_LIBS) $(LDLIBS)

soak: $(SOAK_BIN) $(DAEMON)
	./$(SOAK_BIN) --seconds $(SOAK_SECONDS)

# The version and the installed documentation folder, which the programs print (--version,
# --help): rewritten only when it changes, so `make install PREFIX=/usr` after a plain `make`
# rebuilds what prints it.
VERSION_H := $(BUILD)/gen/convd_version.h
$(VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@printf '/* generated by the Makefile */\n#define CVD_VERSION "%s"\n#define CVD_DOCDIR "%s"\n' \
		'$(VERSION)' '$(DOCDIR)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(BUILD)/server/main.o $(TOOL_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/test_docs.o: $(VERSION_H)
FORCE:

deps:
	@scripts/install-deps.sh --quiet

# no .c includes, no include cycle between modules, the layers kept (also a test: layout)
check-includes:
	@scripts/check-includes.sh

# The one test whose verdict is a deadline (xruns across preset switches on jackd's dummy
# driver) is judged in a second run, alone, after the parallel suite of the plain build:
# beside other tests on 2 cores a neighbour's burst costs xruns that say nothing of the switch.
# Judged, jackd runs at real-time priority (docs/AUDIO.md, "Switching presets").
XRUN_SOLO = CVD_JUDGE_XRUNS=1 ./$(TEST_BIN) --filter 'audio/preset_switch_on_a_paced_device_counts_no_xrun'

# Criterion runs every test in its own process, in parallel; tests read tests/data and
# ../shared/models relative to the top of the tree.
ifeq ($(SAN),thread)
# ThreadSanitizer: the programs the tests start (the daemon, its test-hooks build, the tools)
# are built with it in build-tsan/, and the tests run against them (CVD_BUILD_DIR): every
# daemon, audio, reload and client test then runs a daemon whose threads TSan watches, and a
# report ends it (halt_on_error) so the test fails. The test runner itself is the plain
# build's: Criterion cannot start under TSan (BoxFort maps its arena where TSan keeps its
# shadow memory: Snaipe/Criterion#274). tests/tsan.supp lists the suppressions, with why.
# Suites that start no program run only the plain runner's code, which TSan does not watch:
# this pass leaves them out (they ran in the plain pass; test layout/... checks that none of
# them starts a program).
TSAN_OPTIONS_CI := halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp
TSAN_SKIP := acl alloc chain config errors fuse golden ir json_model keras_tcn layers layers_extra \
	levels limiter longconv memfig metrics nam nam_arch proto_client proto_framed \
	proto_framed_malformed proto_line proto_raw proto_samples proto_text pubsub resample runtime \
	stream vmath worker
empty :=
space := $(empty) $(empty)
TSAN_TESTFLAGS ?= --filter '!($(subst $(space),|,$(strip $(TSAN_SKIP))))/*'
test: deps
	@$(MAKE) --no-print-directory $(DAEMON) $(DAEMON_TESTHOOKS) $(TOOL_BIN) $(SOAK_BIN)
	@$(MAKE) --no-print-directory SAN= WERROR=$(WERROR) build/convd-tests
	CVD_BUILD_DIR=$(CURDIR)/$(BUILD) TSAN_OPTIONS="$(TSAN_OPTIONS_CI) $(TSAN_OPTIONS)" \
		./build/convd-tests $(or $(TESTFLAGS),$(TSAN_TESTFLAGS))
else
test: deps
	@$(MAKE) --no-print-directory $(TEST_BIN)
	./$(TEST_BIN) $(TESTFLAGS)
	$(if $(TESTFLAGS)$(SAN),,$(XRUN_SOLO))
endif

# the aarch64 build (cross-compiled) of dsp/ and the .nam/JSON loaders, tests under qemu-user
test-arm64: deps
	scripts/test-arm64.sh $(TESTFLAGS)

# libFuzzer on the parsers (clang; not part of `make test`): FUZZ_SECONDS per target
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; ./$$b || exit 1; done

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-daemon.sh $(BUILD)

# ---- install ----------------------------------------------------------------------------
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
DATADIR := $(PREFIX)/share/convd
DOCDIR  := $(PREFIX)/share/doc/convd
UNITDIR ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
# where captures live (the units' StateDirectory=): made by install, never removed
STATEDIR ?= /var/lib/convd
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL_TOOLS := $(TOOL_SRC:tools/%.c=%)
MAN_PAGES := $(wildcard man/*.[1-8])

install: $(DAEMON) $(TOOL_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR) $(DESTDIR)/etc/convd \
		$(DESTDIR)$(STATEDIR)/models
	install -m 755 $(DAEMON) $(DESTDIR)$(BINDIR)/convd
	for t in $(INSTALL_TOOLS); do \
		if [ -f $(BUILD)/$$t ]; then install -m 755 $(BUILD)/$$t $(DESTDIR)$(BINDIR)/$$t; fi; \
	done
	install -m 644 config/models/*.json $(DESTDIR)$(DATADIR)/models/
	install -m 644 docs/*.md $(DESTDIR)$(DOCDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' config/convd.service \
		> $(DESTDIR)$(UNITDIR)/convd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/convd.service
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' config/convd-audio.service \
		> $(DESTDIR)$(UNITDIR)/convd-audio.service
	chmod 644 $(DESTDIR)$(UNITDIR)/convd-audio.service
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' config/convd-user.service \
		> $(DESTDIR)$(USERUNITDIR)/convd.service
	chmod 644 $(DESTDIR)$(USERUNITDIR)/convd.service
	@# manual pages, with this installation's paths; bash completion, one file for every program
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR)
	for m in $(MAN_PAGES); do \
		sed -e 's|/usr/share/doc/convd|$(DOCDIR)|g' -e 's|/usr/share/convd|$(DATADIR)|g' \
			-e 's| /lib/systemd/system/| $(UNITDIR)/|g' $$m \
			> $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/} && \
		chmod 644 $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/} || exit 1; \
	done
	install -m 644 completion/convd $(DESTDIR)$(BASHCOMPDIR)/convd
	for t in $(INSTALL_TOOLS); do ln -sf convd $(DESTDIR)$(BASHCOMPDIR)/$$t; done
	install -m 644 LICENSE $(DESTDIR)$(DOCDIR)/
	@# the config is the operator's: never overwritten
	if [ ! -e $(DESTDIR)/etc/convd/convd.conf ]; then \
		sed -e '/^path *=/ s|builtin:\([A-Za-z0-9_.-]*\)|$(DATADIR)/models/\1.json|' config/convd.conf \
			> $(DESTDIR)/etc/convd/convd.conf; \
		chmod 644 $(DESTDIR)/etc/convd/convd.conf; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/convd
	for t in $(INSTALL_TOOLS); do rm -f $(DESTDIR)$(BINDIR)/$$t; done
	@# only what install put there: models you added beside the demos, and $(STATEDIR), stay
	for f in config/models/*.json; do rm -f $(DESTDIR)$(DATADIR)/models/$${f##*/}; done
	for f in docs/*.md LICENSE; do rm -f $(DESTDIR)$(DOCDIR)/$${f##*/}; done
	-rmdir $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) 2>/dev/null
	rm -f $(DESTDIR)$(UNITDIR)/convd.service $(DESTDIR)$(UNITDIR)/convd-audio.service
	rm -f $(DESTDIR)$(USERUNITDIR)/convd.service
	for m in $(MAN_PAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done
	rm -f $(DESTDIR)$(BASHCOMPDIR)/convd
	for t in $(INSTALL_TOOLS); do rm -f $(DESTDIR)$(BASHCOMPDIR)/$$t; done
	@echo "uninstall: /etc/convd/convd.conf and $(STATEDIR) (your models) are kept"

# the committed .clang-format: make format applies it, make format-check lists the files that
# differ (scripts/check-format.sh; .ci/run runs it)
FORMAT_SRC = $(wildcard dsp/*.[ch] model/*.[ch] proto/*.[ch] server/*.[ch] client/*.[ch] tools/*.c tools/lib/*.[ch] tests/*.[ch] tests/bench/*.[ch])
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	@scripts/check-format.sh $(FORMAT_SRC)

clean:
	rm -rf build build-san build-tsan build-fuzz build-arm64

-include $(DSP_OBJ:.o=.d) $(MODEL_OBJ:.o=.d) $(PROTO_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(BUILD)/server/main.d $(TESTHOOKS_OBJ:.o=.d) $(CLIENT_OBJ:.o=.d) $(TOOLLIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(TOOL_SRC:%.c=$(BUILD)/%.d)
