# llamac build. `make` builds build/libllamac.a and build/llamac; `make test` installs what is missing, builds and
# runs every test; `make run` installs, builds and runs the main job (see README.md).
CC      ?= cc
ARCH    := $(shell $(CC) -dumpmachine | cut -d- -f1)
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
WARN    := -Wall -Wextra -Wshadow -Wvla -Werror
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -Iinclude -pthread $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(SAN) $(EXTRA_LDFLAGS)
LDLIBS  := -lm
NPROC   := $(shell nproc 2>/dev/null || echo 2)
MODEL   ?=

LIB_SRC := $(sort $(wildcard src/*/*.c))
# Per-ISA kernel files are built only for their architecture, each with its own flags.
ifeq ($(ARCH),x86_64)
  LIB_SRC := $(filter-out src/kernels/neon%.c,$(LIB_SRC))
else ifeq ($(ARCH),aarch64)
  LIB_SRC := $(filter-out src/kernels/avx2%.c src/kernels/avx512%.c src/kernels/amx.c,$(LIB_SRC))
else
  LIB_SRC := $(filter-out src/kernels/neon%.c src/kernels/avx2%.c src/kernels/avx512%.c src/kernels/amx.c,$(LIB_SRC))
endif
FLAGS_avx2   := -mavx2 -mfma -mf16c
# VNNI and BF16 are optional at run time: avx512.c enables them per function (target attributes), so the rest of
# the file never carries their instructions onto CPUs without them.
FLAGS_avx512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq
# amx.c runs only on CPUs with AMX (Sapphire Rapids on), which all have VNNI
FLAGS_amx    := $(FLAGS_avx512) -mavx512vnni -mamx-tile -mamx-int8
FLAGS_neon   := -march=armv8.2-a+fp16+dotprod

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(sort $(wildcard cli/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON := $(filter-out tests/test_%,$(wildcard tests/*.c))
TEST_COMMON_OBJ := $(TEST_COMMON:%.c=$(BUILD)/%.o)

.PHONY: all lib cli tests test run check setup clean asan cross-aarch64 fuzz
all: $(BUILD)/llamac tests $(BUILD)/bench/bench_kernels

lib: $(BUILD)/libllamac.a
cli: $(BUILD)/llamac
tests: $(TEST_BIN)

$(BUILD)/libllamac.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# src/kernels/avx2*.c, avx512*.c and neon*.c: one ISA each, compiled with its flags.
# (A pattern's % matches at least one character, hence the plain names too.)
$(BUILD)/src/kernels/avx2.o $(BUILD)/src/kernels/avx2_%.o: EXTRA_ISA := $(FLAGS_avx2)
$(BUILD)/src/kernels/avx512.o $(BUILD)/src/kernels/avx512_%.o: EXTRA_ISA := $(FLAGS_avx512)
$(BUILD)/src/kernels/neon.o $(BUILD)/src/kernels/neon_%.o: EXTRA_ISA := $(FLAGS_neon)
$(BUILD)/src/kernels/amx.o: EXTRA_ISA := $(FLAGS_amx)
# the quantized types' kernels (qdot_impl.h) rely on the vectoriser for their unpacking loops
$(BUILD)/src/kernels/avx2_quants.o $(BUILD)/src/kernels/avx512_quants.o $(BUILD)/src/kernels/neon_quants.o: EXTRA_ISA += -O3

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_ISA) -MMD -MP -c $< -o $@

# Line editing for `llamac chat`: libedit (libedit-dev) when this compiler can link it (not in the ARM64 cross
# build, which then reads lines with getline).
HAVE_LIBEDIT := $(shell echo 'char *readline(const char *); int main(void) { return readline == 0; }' | \
                  $(CC) -x c - -ledit -o /dev/null >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_LIBEDIT),1)
  CLI_LIBS := -ledit
$(BUILD)/cli/cmd_chat.o: EXTRA_ISA := -DLC_HAVE_LIBEDIT
endif

# `llamac serve` (server/): libmicrohttpd and Jansson (libmicrohttpd-dev, libjansson-dev), linked into the tool only,
# never into libllamac.a. A compiler that cannot link them (the ARM64 cross build) builds the tool without a server.
HAVE_SERVER := $(shell echo 'int MHD_version(void); int json_object(void); int main(void) { return !MHD_version; }' | \
                 $(CC) -x c - -lmicrohttpd -ljansson -o /dev/null >/dev/null 2>&1 && echo 1)
SRV_OBJ :=
ifeq ($(HAVE_SERVER),1)
  SRV_SRC := $(sort $(wildcard server/*.c))
  SRV_OBJ := $(SRV_SRC:%.c=$(BUILD)/%.o)
  CLI_LIBS += -lmicrohttpd -ljansson
$(BUILD)/cli/cmd_serve.o: EXTRA_ISA := -DLC_HAVE_SERVER
# the chat page is assembled into page.o (.incbin)
$(BUILD)/server/page.o: server/page.html
endif

# The optional libraries found, in a file rewritten only when that changes, so the objects they switch on are rebuilt
# when one is installed or removed (make after scripts/setup.sh then builds the server into an existing build).
FEATURES := libedit=$(HAVE_LIBEDIT) server=$(HAVE_SERVER)
$(shell mkdir -p $(BUILD) && [ "$$(cat $(BUILD)/features 2>/dev/null)" = "$(FEATURES)" ] || \
          echo "$(FEATURES)" > $(BUILD)/features)
$(BUILD)/cli/cmd_chat.o $(BUILD)/cli/cmd_serve.o: $(BUILD)/features

$(BUILD)/llamac: $(CLI_OBJ) $(SRV_OBJ) $(BUILD)/libllamac.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CLI_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_COMMON_OBJ) $(BUILD)/libllamac.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Everything a test run needs: the tool, the test programs, the oracle (llama.cpp from node-llama-cpp).
check: all
	tests/run.sh $(BUILD)

setup:
	scripts/setup.sh

# The full suite: optimised build, the same tests under ASan+UBSan (smaller cases), the ARM64 cross build with its
# tests under qemu, and a short libFuzzer run of every parser's fuzz target.
test: setup
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) asan
	$(MAKE) -j$(NPROC) cross-aarch64
	$(MAKE) -f fuzz/Makefile smoke SMOKE_SECONDS=20
	LLAMAC_REQUIRE_ORACLE=1 tests/run.sh $(BUILD) build-asan:quick build-aarch64:quick:qemu

run: setup
	$(MAKE) -j$(NPROC) $(BUILD)/llamac
	scripts/run-main.sh $(BUILD)/llamac $(MODEL)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all

# Compile-only cross build for ARM64 (Debian gcc-aarch64-linux-gnu); tests run under qemu-aarch64 when present.
cross-aarch64:
	$(MAKE) CC=aarch64-linux-gnu-gcc BUILD=build-aarch64 all

fuzz:
	$(MAKE) -f fuzz/Makefile

clean:
	rm -rf build build-asan build-aarch64 build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(SRV_OBJ:.o=.d) $(TEST_BIN:=.d) $(TEST_COMMON_OBJ:.o=.d)

# Kernel timing (GEMV GB/s, GEMM GFLOP/s per variant): make bench-kernels && build/bench/bench_kernels -t 2
.PHONY: bench-kernels
bench-kernels: $(BUILD)/bench/bench_kernels
$(BUILD)/bench/bench_kernels: $(BUILD)/bench/bench_kernels.o $(BUILD)/libllamac.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
