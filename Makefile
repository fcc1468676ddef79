# kvvm: one core library (a private shared object) under seven thin mains.
#   make            build the package tree in $(BUILD)/pkg
#   make package    write dist/<Publisher>.<Type>__<version>.zip (VERSION=x.y.z for another)
#   make check      every test (unit, integration, agent scenarios, the Windows tier)
#   make check-sanitize   the same under ASan + UBSan
#   make demo       run the main job on this machine
include manifest/extension.mk

VERSION ?= $(KVVM_VERSION)
PUBLISHER := $(KVVM_PUBLISHER)
TYPE := $(KVVM_TYPE)
BUILD ?= build
PY := /usr/bin/python3

CC ?= gcc
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wformat=2 -Wcast-qual -Wvla -Wundef -Wwrite-strings
ifeq ($(CI),true)
WARN += -Werror
endif
SAN_FLAGS :=
# -ffile-prefix-map: no build folder path in the objects, so two clones build the same bytes.
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) $(SAN_FLAGS) -fPIC -fvisibility=hidden \
  -ffile-prefix-map=$(CURDIR)=.
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE $(shell pkg-config --cflags libcurl 2>/dev/null)
# mbedTLS and jansson go into the core library statically, so a VM needs neither installed;
# libc and zlib come from the system, and libcurl, loaded at run time (src/curlapi.h).
# MBEDTLS_DIR: an mbedTLS 2.28 built elsewhere (the release chroot's /opt/mbedtls).
JANSSON_A := $(BUILD)/libjansson_kvvm.a
ifneq ($(MBEDTLS_DIR),)
CPPFLAGS += -I$(MBEDTLS_DIR)/include
MBEDTLS_L := -L$(MBEDTLS_DIR)/lib
endif
# -pthread: Debian's mbedTLS is built with MBEDTLS_THREADING_PTHREAD; before glibc 2.34 the
# mutex functions live in libpthread.
LIB_LIBS := $(JANSSON_A) $(MBEDTLS_L) -Wl,-Bstatic -lmbedtls -lmbedx509 -lmbedcrypto \
  -Wl,-Bdynamic -lz -ldl -pthread
LDFLAGS_SAN := $(SAN_FLAGS)

# src/<layer>/ holds the portable modules, src/posix, src/linux and src/windows each
# platform's files (docs/architecture.md).
PORTABLE := base certmat settings agent vault store service
LIB_SRC := $(wildcard $(foreach d,$(PORTABLE) posix linux,src/$(d)/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
PRIV_H := $(wildcard src/*/*.h)
MAINS := install enable disable update uninstall kvvmd kvvm
PKG := $(BUILD)/pkg
LIBSO := $(PKG)/lib/libkvvm.so
BINS := $(MAINS:%=$(PKG)/bin/%)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
DIST := $(if $(filter build,$(BUILD)),dist,$(BUILD)/dist)
ZIP := $(DIST)/$(PUBLISHER).$(TYPE)__$(VERSION).zip
DEPS_OK := $(BUILD)/.deps-build

.PHONY: valgrind bench all package release stress check check-unit check-agent check-sanitize demo clean deps-test
all: $(BINS) $(PKG)/HandlerManifest.json $(PKG)/share/kvvmd.service.in $(PKG)/README.txt

$(DEPS_OK): scripts/deps.sh
	@mkdir -p $(BUILD)
	MBEDTLS_DIR=$(MBEDTLS_DIR) sh scripts/deps.sh build
	@touch $@

deps-test:
	sh scripts/deps.sh test

# The version reaches only version.o, which is rebuilt whenever VERSION changes.
VERSION_STAMP := $(BUILD)/version.stamp
$(shell mkdir -p $(BUILD); [ "$$(cat $(VERSION_STAMP) 2>/dev/null)" = "$(VERSION)" ] || \
  echo "$(VERSION)" > $(VERSION_STAMP))
$(BUILD)/obj/base/version.o: src/base/version.c $(VERSION_STAMP) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DKVVM_VERSION_STRING='"$(VERSION)"' $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: src/%.c $(wildcard include/kvvm/*.h) $(PRIV_H) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# Debian's libjansson.a with its one `stdin` reference renamed (why: src/linux/jansson_link_linux.c).
$(JANSSON_A): | $(DEPS_OK)
	objcopy --redefine-sym stdin=kvvm_jansson_stdin \
	  $$(gcc -print-file-name=libjansson.a) $@

# Only kvvm_* symbols leave the library; everything linked into it stays private.
$(LIBSO): $(LIB_OBJ) src/libkvvm.map $(JANSSON_A)
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(LIB_OBJ) -Wl,--version-script=src/libkvvm.map -Wl,-z,defs \
	  -Wl,-z,relro,-z,now $(LDFLAGS_SAN) $(LIB_LIBS)

$(PKG)/bin/%: handler/%.c $(LIBSO) $(wildcard include/kvvm/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIE -pie -o $@ $< -L$(PKG)/lib -lkvvm \
	  -Wl,-rpath,'$$ORIGIN/../lib' -Wl,-z,relro,-z,now $(LDFLAGS_SAN)

$(PKG)/HandlerManifest.json: HandlerManifest.json
	@mkdir -p $(@D)
	cp $< $@

$(PKG)/share/kvvmd.service.in: scripts/kvvmd.service.in
	@mkdir -p $(@D)
	cp $< $@

$(PKG)/README.txt: scripts/package-readme.txt
	@mkdir -p $(@D)
	cp $< $@

# The zip holds the package tree without debug information (symbols stay, for backtraces).
ZIPSTAGE := $(BUILD)/zipstage
package: $(ZIP)
$(ZIP): all scripts/mkzip.py
	@mkdir -p $(DIST)
	rm -rf $(ZIPSTAGE) && cp -r $(PKG) $(ZIPSTAGE)
	strip --strip-debug $(ZIPSTAGE)/bin/* $(ZIPSTAGE)/lib/*.so
	$(PY) scripts/mkzip.py $(ZIPSTAGE) $@

# The release zip, built in the oldest Debian release the mirror serves (scripts/release.sh).
release:
	sh scripts/deps.sh release
	sh scripts/release.sh dist/release $(VERSION)

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h include/kvvm/*.h) $(LIBSO)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -fPIE -pie -o $@ $< -L$(PKG)/lib -lkvvm \
	  -Wl,-rpath,'$(abspath $(PKG))/lib' $(LDFLAGS_SAN) -ljansson -lz $(MBEDTLS_L) -lmbedcrypto

RELEASE_ZIP := dist/release/$(notdir $(ZIP))
# The Windows tier (check-windows) runs inside check too, its counts added up by tests/run.sh;
# WIN_TIER= leaves it out (check-sanitize: the sanitizers do not reach the cross build).
WIN_TIER ?= yes
check: deps-test
	$(MAKE) all package $(UNIT_BIN) $(BUILD)/stress/scaleset release $(if $(WIN_TIER),win-tests)
	KVVM_RELEASE_ZIP=$(RELEASE_ZIP) $(if $(WIN_TIER),KVVM_WBUILD=$(WBUILD) KVVM_WZIP=$(WZIP)) \
	  sh tests/run.sh $(BUILD) $(ZIP)

check-sanitize:
	$(MAKE) BUILD=build-san SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=undefined" CFLAGS="-O1 -g" WIN_TIER= check

# The unit tests under valgrind: no leaks, no invalid reads (slow: minutes, not seconds).
valgrind: deps-test
	$(MAKE) all $(UNIT_BIN)
	@for t in $(UNIT_BIN); do \
	  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=1 $$t >/dev/null 2>$$t.vg || { echo "FAIL $$t"; cat $$t.vg; exit 1; }; \
	  echo "ok $$t"; \
	done

demo: deps-test all
	sh scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-san dist

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, seeds in tests/fuzz/corpus/<name>/ (kept small;
# new inputs go to a scratch folder). FUZZ_TIME seconds per target.
FUZZ_TIME ?= 60
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
.PHONY: fuzz
build-fuzz/libjansson_kvvm.a:
	@mkdir -p $(@D)
	objcopy --redefine-sym stdin=kvvm_jansson_stdin $$(gcc -print-file-name=libjansson.a) $@

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRC) $(wildcard include/kvvm/*.h tests/fuzz/*.h) $(PRIV_H) build-fuzz/libjansson_kvvm.a
	sh scripts/deps.sh fuzz
	clang -std=c11 $(CPPFLAGS) -DKVVM_VERSION_STRING='"fuzz"' -Isrc $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) \
	  build-fuzz/libjansson_kvvm.a -lmbedtls -lmbedx509 -lmbedcrypto -lz -ldl

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  n=$${f#build-fuzz/fuzz_}; scratch=$$(mktemp -d); \
	  echo "== $$n ($(FUZZ_TIME) s)"; \
	  $$f -max_total_time=$(FUZZ_TIME) -timeout=25 -print_final_stats=1 $$scratch tests/fuzz/corpus/$$n \
	    2>build-fuzz/$$n.log || { tail -40 build-fuzz/$$n.log; rm -rf $$scratch; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|cov:' build-fuzz/$$n.log | tail -2; \
	  rm -rf $$scratch; \
	done

# Benchmarks print figures; they are never part of make check. tests/bench/bench_<name>.c.
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: tests/bench/%.c $(LIBSO)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -fPIE -pie -o $@ $< -L$(PKG)/lib -lkvvm \
	  -Wl,-rpath,'$(abspath $(PKG))/lib' -ljansson -lz

# make bench: kvvm beside the Azure SDK for JavaScript and a curl loop (tests/bench/bench.py);
# writes docs/benchmarks.md and docs/benchmarks.json. BENCH_ARGS="--runs 1 --sizes 1,100" etc.
bench: deps-test
	sh scripts/deps.sh bench
	$(MAKE) all $(BENCH_BIN)
	$(PY) tests/bench/bench.py --build $(BUILD) $(BENCH_ARGS)

# make stress: the long reliability runs (tests/stress/stress.py): SIGKILL at random moments,
# the compressed day of faults (soak), the scale-set simulation; writes docs/reliability.md.
.PHONY: stress
$(BUILD)/stress/scaleset: tests/stress/scaleset.c $(wildcard include/kvvm/*.h) $(LIBSO)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIE -pie -o $@ $< -L$(PKG)/lib -lkvvm \
	  -Wl,-rpath,'$(abspath $(PKG))/lib' $(LDFLAGS_SAN)

stress: deps-test
	$(MAKE) all $(BUILD)/stress/scaleset $(BUILD)/soak/soak
	$(PY) tests/stress/stress.py --build $(BUILD) $(STRESS_ARGS)

# The compressed 24-hour run (tests/soak): the real engine on a fake clock against the
# emulator, rotations and faults injected; prints passes, RSS and descriptor figures.
# Not part of check (about a minute or two).
SOAK_HOURS ?= 24
# SOAK_MIXED=SEED: random faults, several at once, every hour, instead of the day's plan.
SOAK_MIXED ?=
.PHONY: soak
$(BUILD)/soak/soak: tests/soak/soak.c $(wildcard include/kvvm/*.h) $(LIBSO)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIE -pie -o $@ $< -L$(PKG)/lib -lkvvm \
	  -Wl,-rpath,'$(abspath $(PKG))/lib' $(LDFLAGS_SAN)

soak: deps-test
	$(MAKE) all $(BUILD)/soak/soak
	$(PY) tests/soak/soak.py $(BUILD)/soak/soak $(SOAK_HOURS) $(SOAK_MIXED)

# ---- Windows: the same sources cross-built with mingw-w64 (docs/architecture.md) ----
#   make windows         dist/<Publisher>.<TypeWindows>__<version>.zip
#   make check-windows   the Windows tier under wine (tests/windows/run.sh)
# scripts/win-deps.sh installs the toolchain and wine and cross-builds libcurl (Schannel),
# jansson, mbedTLS and zlib once into /var/cache/kvvm (it prints the prefix). The core is a
# static library linked into each executable, so the package needs no DLL of its own.
WBUILD ?= build-win
WCC := x86_64-w64-mingw32-gcc
WAR := x86_64-w64-mingw32-ar
WSTRIP := x86_64-w64-mingw32-strip
TYPE_WIN := $(KVVM_TYPE_WINDOWS)
WZIP := $(DIST)/$(PUBLISHER).$(TYPE_WIN)__$(VERSION).zip
WIN_LIB_SRC := $(wildcard $(foreach d,$(PORTABLE) windows,src/$(d)/*.c))
WIN_OBJ := $(WIN_LIB_SRC:src/%.c=$(WBUILD)/obj/%.o)
WPKG := $(WBUILD)/pkg
WBINS := $(MAINS:%=$(WPKG)/bin/%.exe)
WPREFIX_FILE := $(WBUILD)/prefix
# _WIN32_WINNT 0x0601: Windows 7's API (what wine 8 reports), which Server 2012 R2 and newer
# all provide. __USE_MINGW_ANSI_STDIO: C99 printf formats (%zu, %lld) on msvcrt.
WIN_CPPFLAGS = -Iinclude -Isrc -I$(shell cat $(WPREFIX_FILE))/include -DCURL_STATICLIB -D_GNU_SOURCE \
  -D_POSIX_THREAD_SAFE_FUNCTIONS -D_WIN32_WINNT=0x0601 -DWIN32_LEAN_AND_MEAN -DUNICODE -D_UNICODE \
  -D__USE_MINGW_ANSI_STDIO=1
WIN_CFLAGS := -std=c11 $(WARN) -O2 -g -ffile-prefix-map=$(CURDIR)=.
WIN_LIBS = -L$(shell cat $(WPREFIX_FILE))/lib \
  $(shell cat $(shell cat $(WPREFIX_FILE))/libs.txt) -lncrypt -lhttpapi -liphlpapi -lshell32 -lole32 -luuid

.PHONY: windows check-windows win-deps win-tests
$(WPREFIX_FILE): scripts/win-deps.sh
	@mkdir -p $(@D)
	sh scripts/win-deps.sh >$@.tmp && mv $@.tmp $@

$(WBUILD)/obj/base/version.o: src/base/version.c $(VERSION_STAMP) $(WPREFIX_FILE)
	@mkdir -p $(@D)
	$(WCC) $(WIN_CPPFLAGS) -DKVVM_VERSION_STRING='"$(VERSION)"' $(WIN_CFLAGS) -c $< -o $@

$(WBUILD)/obj/%.o: src/%.c $(wildcard include/kvvm/*.h) $(PRIV_H) $(WPREFIX_FILE)
	@mkdir -p $(@D)
	$(WCC) $(WIN_CPPFLAGS) $(WIN_CFLAGS) -c $< -o $@

$(WBUILD)/libkvvm.a: $(WIN_OBJ)
	rm -f $@ && $(WAR) rcs $@ $^

# -static: libgcc and winpthread inside; the executables import only Windows' own DLLs.
$(WPKG)/bin/%.exe: handler/%.c $(WBUILD)/libkvvm.a
	@mkdir -p $(@D)
	$(WCC) $(WIN_CPPFLAGS) $(WIN_CFLAGS) -static -o $@ $< $(WBUILD)/libkvvm.a $(WIN_LIBS)

$(WPKG)/HandlerManifest.json: manifest/HandlerManifest.windows.json
	@mkdir -p $(@D)
	cp $< $@

windows: $(WZIP)
$(WZIP): $(WBINS) $(WPKG)/HandlerManifest.json scripts/mkzip.py
	@mkdir -p $(DIST)
	rm -rf $(WBUILD)/zipstage && cp -r $(WPKG) $(WBUILD)/zipstage
	$(WSTRIP) --strip-debug $(WBUILD)/zipstage/bin/*.exe
	$(PY) scripts/mkzip.py $(WBUILD)/zipstage $@

# The unit suite cross-built, one exe per tests/unit file, run under wine by
# tests/windows/units.sh beside the native run. WIN_UNIT_SKIP: the tests of Linux-only code,
# each with its reason (tests/windows/units.sh prints it as that test's "skipped" line).
WIN_UNIT_SKIP := test_acl test_hooks test_store test_store_crash test_store_split
WIN_SKIP_test_acl := POSIX ACL grants (src/linux/acl_linux.c), checked with getfacl and as other users
WIN_SKIP_test_hooks := the POSIX hook runner (src/posix/hooks_posix.c: fexecve, process groups, modes); Windows has test_hooks_win
WIN_SKIP_test_store := the PEM file store (src/posix/store_*_posix.c); Windows has test_store_win
WIN_SKIP_test_store_split := the split files (fileLayout) of the PEM file store (src/posix/store_split_posix.c); Windows ignores fileLayout (test_settings_win)
WIN_SKIP_test_store_crash := crash safety of the PEM file store (src/posix/store_*_posix.c), by SIGKILL
WIN_UNIT := $(filter-out $(WIN_UNIT_SKIP),$(UNIT_SRC:tests/unit/%.c=%))
WIN_UNIT_BIN := $(WIN_UNIT:%=$(WBUILD)/tests/%.exe)
# A test that defines one of the library's functions itself (the clock of test_plan and
# test_kv_emu) wins over the archive's copy, which the linker still pulls in for the member's
# other functions.
WIN_UNIT_LDFLAGS_test_plan := -Wl,--allow-multiple-definition
WIN_UNIT_LDFLAGS_test_kv_emu := -Wl,--allow-multiple-definition

$(WBUILD)/tests/%.exe: tests/unit/%.c $(wildcard tests/unit/*.h) $(WBUILD)/libkvvm.a
	@mkdir -p $(@D)
	$(WCC) $(WIN_CPPFLAGS) -Itests/unit $(WIN_CFLAGS) -static -o $@ $< $(WBUILD)/libkvvm.a \
	  $(WIN_UNIT_LDFLAGS_$*) $(WIN_LIBS)

$(WBUILD)/tests/skipped.txt: Makefile
	@mkdir -p $(@D)
	printf '%s\n' $(foreach t,$(WIN_UNIT_SKIP),'$(t): $(WIN_SKIP_$(t))') >$@

# The Windows-only tests (tests/windows/test_*.c) against the same library.
WIN_TEST_SRC := $(wildcard tests/windows/test_*.c tests/windows/svc_harness.c)
WIN_TEST_BIN := $(WIN_TEST_SRC:tests/windows/%.c=$(WBUILD)/tests/win/%.exe)
$(WBUILD)/tests/win/%.exe: tests/windows/%.c $(WBUILD)/libkvvm.a
	@mkdir -p $(@D)
	$(WCC) $(WIN_CPPFLAGS) $(WIN_CFLAGS) -static -o $@ $< $(WBUILD)/libkvvm.a \
	  $(WIN_UNIT_LDFLAGS_$*) $(WIN_LIBS)

win-tests: $(WZIP) $(WIN_UNIT_BIN) $(WBUILD)/tests/skipped.txt $(WIN_TEST_BIN)

check-windows: deps-test
	$(MAKE) win-tests
	sh tests/windows/run.sh $(WBUILD) $(WZIP)
