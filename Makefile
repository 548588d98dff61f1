# kdrec: one non-recursive Makefile for the tools, the tests and the pipelines.
#
#   make            build build/bin/kd-*          make test     unit + Bats, then again under ASan+UBSan
#   make report     the study (pipelines/)        make bench    speed figures (never asserted in tests)
#   make install PREFIX=/usr/local DESTDIR=       make clean
#
# Build flags can be overridden (CFLAGS=..., CC=clang); a stamp file makes a change of
# flags rebuild everything.  `make SANITIZE=address,undefined` builds into build-san/.
# Warnings are always on; -Werror only with DEVELOPER=1 (CI sets it).  The build prints one
# line per file (`CC lib/kd_bpr.c`, `AR build/libkd.a`, `LD build/bin/kd-train`), so a warning
# stands out; `make V=1` prints the full commands instead (git's and Linux's convention).

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wvla -Wformat=2 -Wno-unused-parameter
ifdef DEVELOPER
WARN    += -Werror
endif
ifeq ($(V),1)
QUIET    =
else
# $(call QUIET,CC,file): prefix for a recipe line, printing what it makes instead of how
QUIET    = @printf '%-4s %s\n' $(1) $(2);
endif
ifdef SANITIZE
BUILD    = build-san
SAN      = -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
# -std=c11 (not gnu11) keeps gcc from fusing a*b+c into FMA behind our back, so a float
# result does not depend on the dialect; hot kernels choose their own SIMD at run time.
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -pthread $(WARN) $(CFLAGS) $(SAN)
LIBS       = -lcurl -lxxhash -lz -lm -pthread

TOOLS      = kd-info kd-cat kd-gen kd-train kd-eval kd-distill kd-report kd-cache kd-quant
LIB_SRCS   = $(sort $(wildcard lib/*.c))
LIB_OBJS   = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
TOOL_OBJS  = $(TOOLS:%=$(BUILD)/tools/%.o)
BINS       = $(TOOLS:%=$(BUILD)/bin/%)
UNIT_SRCS  = $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS  = $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
UNIT_OBJS  = $(patsubst tests/unit/%.c,$(BUILD)/unit/%.o,$(UNIT_SRCS))

all: $(BINS)

$(LIB_OBJS) $(TOOL_OBJS): $(BUILD)/%.o: %.c $(BUILD)/cflags.stamp | deps
	@mkdir -p $(@D)
	$(call QUIET,CC,$<)$(CC) $(ALL_CFLAGS) -Ilib -MMD -MP -c -o $@ $<

# Adam's and Adagrad's square roots (kd_sgd.c) vectorise only when sqrtf need not set errno;
# that changes no value (IEEE sqrt is correctly rounded; a moment is never negative)
$(BUILD)/lib/kd_sgd.o: ALL_CFLAGS += -fno-math-errno

# the unit objects live in $(BUILD)/unit/, their sources in tests/unit/
$(UNIT_OBJS): $(BUILD)/unit/%.o: tests/unit/%.c $(BUILD)/cflags.stamp | deps
	@mkdir -p $(@D)
	$(call QUIET,CC,$<)$(CC) $(ALL_CFLAGS) -Ilib -MMD -MP -c -o $@ $<

$(BUILD)/libkd.a: $(LIB_OBJS)
	@rm -f $@
	$(call QUIET,AR,$@)$(AR) rcs $@ $^

$(BINS): $(BUILD)/bin/%: $(BUILD)/tools/%.o $(BUILD)/libkd.a
	@mkdir -p $(@D)
	$(call QUIET,LD,$@)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LIBS)

$(UNIT_BINS): $(BUILD)/unit/%: $(BUILD)/unit/%.o $(BUILD)/libkd.a
	$(call QUIET,LD,$@)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LIBS)

# FORCE'd only when the flags differ from the stamp's (read while parsing), so that after a
# build `make -n` takes no binary, and so no pipeline stage, for one to remake
stamp_text := $(CC) $(ALL_CFLAGS) $(LDFLAGS)
stamp_old  := $(file <$(BUILD)/cflags.stamp)
$(BUILD)/cflags.stamp: $(if $(and $(findstring x$(stamp_old),x$(stamp_text)),$(findstring x$(stamp_text),x$(stamp_old))),,FORCE)
	@mkdir -p $(@D); f='$(CC) $(ALL_CFLAGS) $(LDFLAGS)'; \
	  test "$$f" = "$$(cat $@ 2>/dev/null)" || echo "$$f" >$@

-include $(LIB_OBJS:.o=.d) $(TOOL_OBJS:.o=.d) $(UNIT_OBJS:.o=.d)

# ---- dependencies: check, and install what is missing when we can -----------------------
deps:
	@sh tools/deps.sh

# ---- tests -------------------------------------------------------------------------------
FUZZERS     = artifact import cli
REPLAY_BINS = $(FUZZERS:%=$(BUILD)/unit/replay_%)

# the fuzz harnesses, replayed on their seed corpus and every past finding (regress/)
$(REPLAY_BINS): $(BUILD)/unit/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(BUILD)/libkd.a $(BUILD)/cflags.stamp
	@mkdir -p $(@D)
	$(call QUIET,CCLD,$@)$(CC) $(ALL_CFLAGS) -Ilib -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/replay.c $(BUILD)/libkd.a $(LIBS)

check-unit: $(UNIT_BINS) $(REPLAY_BINS)
	@set -e; for t in $(UNIT_BINS); do $$t; done
	@set -e; for f in $(FUZZERS); do $(BUILD)/unit/replay_$$f $$(find tests/fuzz/corpus/$$f tests/fuzz/regress/$$f -type f 2>/dev/null | sort) >/dev/null; done

check-bats: $(BINS)
	@KD_BIN=$(abspath $(BUILD)/bin) bats $${CI:+--tap} tests

# no lib/ module includes a header of a layer above its own (the map: README.md's Layout)
check-layers:
	@sh tools/check-layers.sh

check: check-layers check-unit check-bats

check-san:
	@$(MAKE) --no-print-directory SANITIZE=address,undefined check

test: deps
	@$(MAKE) --no-print-directory check
	@echo "== the same suite under AddressSanitizer + UndefinedBehaviorSanitizer =="
	@$(MAKE) --no-print-directory check-san
	@echo "== a small pipeline with every tool under valgrind memcheck =="
	@$(MAKE) --no-print-directory check-valgrind >$(BUILD)/check-valgrind.log 2>&1 || { tail -30 $(BUILD)/check-valgrind.log; exit 1; }
	@tail -1 $(BUILD)/check-valgrind.log

# ---- valgrind: a small end-to-end pipeline with every tool under memcheck (leaks included);
# any report fails the run.  Wrappers in $(BUILD)/vg/bin stand in for the tools.
check-valgrind: all
	@rm -rf $(BUILD)/vg && mkdir -p $(BUILD)/vg/bin
	@for t in $(TOOLS); do \
	  printf '#!/bin/sh\nexec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect "%s" "$$@"\n' \
	    "$(abspath $(BUILD)/bin)/$$t" >$(BUILD)/vg/bin/$$t; chmod +x $(BUILD)/vg/bin/$$t; done
	cd $(BUILD)/vg && $(MAKE) --no-print-directory -f $(abspath pipelines/seed.mk) pipeline-report BUILD=$(abspath $(BUILD)/vg) \
	  KD_CACHE=cache SEEDS=1 GEN_FLAGS="--users 100 --items 60 --mean 10 --rank 8 --clusters 8" EPOCHS=4 ALPHAS=0.1 LAMBDAS=0.3
	@echo "check-valgrind: no memcheck error and no leak in the pipeline"

# ---- fuzzing: libFuzzer harnesses (clang), each run FUZZ_SECONDS; findings go to build-fuzz/
FUZZ_SECONDS ?= 60
FUZZ_DIR      = build-fuzz
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRCS) | deps
	@mkdir -p $(@D)
	$(call QUIET,CCLD,$@)clang -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=all -Ilib -o $@ $< $(LIB_SRCS) $(LIBS)

fuzz: $(FUZZERS:%=$(FUZZ_DIR)/fuzz_%)
	@set -e; for f in $(FUZZERS); do mkdir -p $(FUZZ_DIR)/corpus-$$f; \
	  echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=256 -malloc_limit_mb=256 \
	    -artifact_prefix=$(FUZZ_DIR)/crash-$$f- $(FUZZ_DIR)/corpus-$$f tests/fuzz/corpus/$$f 2>&1 | tail -3; done

# ---- the study -----------------------------------------------------------------------------
# `make report [PIPELINE=seed|real|sweep]`: the pipeline's DAG lives in pipelines/$(PIPELINE).mk
# and is read only when a pipeline target is asked for.
PIPELINE ?= seed
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
ifneq ($(filter pipeline-report pipeline-args,$(MAKECMDGOALS)),)
ifeq ($(wildcard pipelines/$(PIPELINE).mk),)
$(error PIPELINE=$(PIPELINE): no pipelines/$(PIPELINE).mk (seed, real, sweep))
endif
include pipelines/$(PIPELINE).mk
endif
$(BINS): | deps
# stages run in parallel (each tool's result is the same for any thread count); on a terminal
# a progress line on stderr counts them (tools/progress.sh), quiet otherwise
report: deps all
	@sh tools/progress.sh $(JOBS) pipeline-report $(MAKE) --no-print-directory -j$(JOBS)
# the same on a Slurm cluster: make slurm-report / slurm-stages (docs/slurm.md)
include pipelines/slurm.mk

$(BUILD)/bench/bench: tests/bench/bench.c $(BUILD)/libkd.a $(BUILD)/cflags.stamp
	@mkdir -p $(@D)
	$(call QUIET,CCLD,$@)$(CC) $(ALL_CFLAGS) -Ilib -o $@ $< $(BUILD)/libkd.a $(LIBS)

# a PNG of the HTML report through headless Chromium (Debian's chromium; installed when root)
report-shot: report
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q chromium >/dev/null; } || \
	  { echo "report-shot: needs chromium: sudo apt-get install -y chromium" >&2; exit 1; }
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	  --disable-component-update --disable-sync --user-data-dir=$$(mktemp -d) --hide-scrollbars \
	  --window-size=1200,3800 --screenshot=$(abspath data/$(PIPELINE))/report.png file://$(abspath data/$(PIPELINE))/report.html
	@echo "report-shot: data/$(PIPELINE)/report.png"

bench: deps all $(BUILD)/bench/bench
	@sh tools/bench.sh $(abspath $(BUILD))

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin

clean:
	rm -rf build build-san build-fuzz

.DELETE_ON_ERROR:
.SUFFIXES:
.PHONY: all deps check check-layers check-unit check-bats check-san check-valgrind test report pipeline-report report-shot bench fuzz install clean FORCE
