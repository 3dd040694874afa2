# malfam - one flat Makefile. Outputs go to $(BUILD) (default build/), so several builds
# (plain, asan) can live side by side: make BUILD=build/asan ...
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
MF_DATA ?= $(abspath ../shared/data)
PREFIX  ?= /usr/local
export MF_DATA

PKGS    := yajl libuv inih zlib
# Debian packages by purpose. `make deps` installs them all (developers, CI); `make demo`
# only runtime + build + demo; deps-runtime, deps-build, deps-demo, deps-test one stage each
# (deps-list-<stage> prints a list). A feature adds its packages on a line of its own:
# DEB_BUILD += ..., DEB_TEST += ...
# Runtime: what the binaries load (tests/integration/package.sh checks it against ldd), the
# Python of the client and host modules, adduser for the Debian package's service user.
DEB_RUNTIME := libc6 libyajl2 libuv1 libinih1 zlib1g libopenblas0 python3 adduser
DEB_BUILD   := build-essential pkg-config libyajl-dev libuv1-dev libopenblas-dev libinih-dev \
               zlib1g-dev
# The demo reads gzip reports; its web page and screenshot use test packages when present.
DEB_DEMO    := gzip
# Tests, benchmarks, fuzzing, packaging checks and the demo's optional web UI screenshot.
DEB_TEST    := check time yajl-tools lintian systemd \
               python3-pytest python3-torch python3-django chromium valgrind clang libclang-rt-14-dev \
               python3-pymongo python3-sqlalchemy python3-tz python3-pefile python3-magic python3-yara \
               python3-dnspython python3-tldextract python3-cachetools python3-jinja2 python3-chardet \
               python3-packaging python3-pycryptodome python3-olefile python3-pil python3-six \
               python3-dateutil
# MPI training (mpirun -np N malfam train), optional at build time (MPI below): the tests
# run it, so CI builds with it.
DEB_TEST    += openmpi-bin libopenmpi-dev
# (python3-pymongo ... python3-pil: CAPEv2's import chain; python3-six, -dateutil, -pymongo,
#  -sqlalchemy also on Cuckoo 2.0.7's python2.7 path: tests/hosts.)
DEB_PKGS = $(DEB_RUNTIME) $(DEB_BUILD) $(DEB_DEMO) $(DEB_TEST)
# BLAS: Debian 12 ships openblas.pc (libopenblas-dev); fall back to plain -lopenblas.
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

OPT     ?= -O2 -g
CFLAGS  := $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP -Icore -Iplugin/proto \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(BLAS_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(BLAS_LIBS) -lpthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

# MPI: `malfam train` across ranks (plugin/cli/mpi.c) when Open MPI is found (pkg-config
# ompi-c, else mpicc); MPI=0 builds without it, MPI=1 insists. libmalfam never links it.
MPI ?= auto
ifneq ($(MPI),0)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
ifeq ($(strip $(MPI_LIBS)),)
ifeq ($(MPI),1)
$(error MPI=1 but neither pkg-config ompi-c nor mpicc found: install libopenmpi-dev)
endif
else
$(BUILD)/plugin/cli/%.o: CFLAGS += -DMF_WITH_MPI $(MPI_CFLAGS)
$(BUILD)/malfam $(BUILD)/deb-bin/malfam: LDLIBS += $(MPI_LIBS)
# a malfam built with MPI loads libmpi: the runtime list says so (package.sh checks ldd)
DEB_RUNTIME += libopenmpi3
endif
endif

CORE_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(wildcard core/*.c))
# One object list per program. Each program's folder sees core/ and plugin/proto/ (shared by
# the CLI and the daemon) and its own headers, so the CLI cannot include daemon internals.
PROTO_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugin/proto/*.c))
CLI_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugin/cli/*.c))
DAEMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out plugin/malfamd/main.c,$(wildcard plugin/malfamd/*.c)))
CHECK_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/check_*.c))
BENCH_BIN  := $(patsubst bench/%.c,$(BUILD)/%,$(wildcard bench/bench_*.c))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
LIB        := $(BUILD)/libmalfam.a
# The public headers: core/malfam.h and the headers it includes (its #include lines are the one
# list). The others in core/ are private: internal.h and *_priv.h, never installed.
MF_PUBLIC  := $(addprefix core/,$(shell sed -n 's/^\#include "\(.*\.h\)"/\1/p' core/malfam.h))
MF_HEADERS := core/malfam.h $(MF_PUBLIC)
MF_PRIVATE := core/internal.h $(wildcard core/*_priv.h)

.PHONY: all deps check check-unit check-integration check-python check-golden golden-update \
        check-headers check-example check-hosts asan valgrind bench demo fuzz clean install
all: $(LIB) $(BUILD)/malfam $(BUILD)/malfamd $(BUILD)/example

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# tests, benchmarks and fuzz targets reach into the daemon's internals on purpose
$(BUILD)/tests/%.o $(BUILD)/bench/%.o: CFLAGS += -Iplugin/malfamd

$(LIB): $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/malfam: $(CLI_OBJ) $(PROTO_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/malfamd: $(BUILD)/plugin/malfamd/main.o $(DAEMON_OBJ) $(PROTO_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The example sees core/ only and links libmalfam.a only: it proves the public API suffices.
EXAMPLE_CFLAGS := $(OPT) -std=c11 -Wall -Wextra -Werror -MMD -MP -Icore $(EXTRA_CFLAGS)
$(BUILD)/plugin/example/example.o: plugin/example/example.c
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_CFLAGS) -c -o $@ $<

$(BUILD)/example: $(BUILD)/plugin/example/example.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/check_all: $(CHECK_OBJ) $(DAEMON_OBJ) $(PROTO_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench_%: $(BUILD)/bench/bench_%.o $(DAEMON_OBJ) $(PROTO_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets as plain corpus replayers (no libFuzzer needed): tests/fuzz/fuzz_<x>.c
$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o $(DAEMON_OBJ) \
                 $(PROTO_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# $(call deb_install,PACKAGES): install the missing ones (as root), say which
define deb_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; } || \
	  { echo "deps: could not install:$$missing (run 'make $@' as root)"; exit 1; }; \
	else echo "$@: all installed"; fi
endef

.PHONY: deps-runtime deps-build deps-demo deps-test
deps deps-test:
	$(call deb_install,$(DEB_PKGS))
deps-runtime:
	$(call deb_install,$(DEB_RUNTIME))
deps-build:
	$(call deb_install,$(DEB_RUNTIME) $(DEB_BUILD))
deps-demo:
	$(call deb_install,$(DEB_RUNTIME) $(DEB_BUILD) $(DEB_DEMO))
deps-list-%:
	@echo $(DEB_$(shell echo $* | tr a-z A-Z))

check: deps
	$(MAKE) all
	$(MAKE) check-unit check-headers check-example check-integration check-python check-golden \
	  check-hosts

check-unit: $(BUILD)/check_all
	$(BUILD)/check_all

# Each public header compiles on its own (twice, for its guard) with the flags of an outside
# program, and every core/ header is either public (included by malfam.h) or private.
check-headers:
	@set -e; for h in $(notdir $(MF_HEADERS)); do \
	  printf '#include "%s"\n#include "%s"\n' $$h $$h | \
	    $(CC) -std=c11 -Wall -Wextra -Werror -Icore -fsyntax-only -x c - || \
	    { echo "check-headers: $$h does not compile on its own"; exit 1; }; done
	@stray="$(filter-out $(MF_HEADERS) $(MF_PRIVATE),$(wildcard core/*.h))"; \
	if [ -n "$$stray" ]; then \
	  echo "check-headers: $$stray: neither included by core/malfam.h nor private"; exit 1; fi
	@echo "check-headers: $(words $(MF_HEADERS)) public headers compile on their own"

# plugin/example/example.c against `malfam score` on every report in $(MF_DATA)/reports, with a tiny
# model trained here (~10 s, redone when malfam changes): same calls, best family and score.
$(BUILD)/example.model: $(BUILD)/malfam
	@for f in calls.txt.gz index.csv ApiIndex.txt; do [ -r "$(MF_DATA)/mal-api-2019-808/$$f" ] || \
	  { echo "example.model: missing $(MF_DATA)/mal-api-2019-808/$$f (set MF_DATA)"; exit 1; }; done
	$(BUILD)/malfam train --calls $(MF_DATA)/mal-api-2019-808/calls.txt.gz \
	  --index $(MF_DATA)/mal-api-2019-808/index.csv \
	  --api-index $(MF_DATA)/mal-api-2019-808/ApiIndex.txt --epochs 1 --hidden 16 --embed 8 \
	  --dense 16 --max-len 200 --seed 11 --out $@ --quiet > $@.log

check-example: $(BUILD)/example $(BUILD)/malfam $(BUILD)/example.model
	$(PYTHON) plugin/example/check_example.py $(BUILD) $(BUILD)/example.model $(MF_DATA)/reports

# The scripts make check runs. daemon_common.sh is sourced by the others; daemon_soak.sh and
# daemon_valgrind.sh are the long modes, run by `make soak` and `make valgrind-daemon`.
INTEGRATION_TESTS := tests/integration/equivalence.sh tests/integration/daemon_basic.sh \
                     tests/integration/daemon_faults.sh tests/integration/cli_ops.sh \
                     tests/integration/fuzz_replay.sh tests/integration/store.sh \
                     tests/integration/train_data.sh
INTEGRATION_TESTS += tests/integration/package.sh
INTEGRATION_TESTS += tests/integration/daemon_files.sh
INTEGRATION_TESTS += tests/integration/daemon_hostile.sh
INTEGRATION_TESTS += tests/integration/daemon_ops.sh
INTEGRATION_TESTS += tests/integration/daemon_reload.sh
INTEGRATION_TESTS += tests/integration/mpi.sh
INTEGRATION_TESTS += tests/integration/bench_small.sh

check-integration: all $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(FUZZ_SRC))
	@set -e; for t in $(INTEGRATION_TESTS); do \
	  echo "== $$t"; BUILD=$(BUILD) PYTHON=$(PYTHON) bash $$t; done

check-python: all
	@if ls tests/python/test_*.py >/dev/null 2>&1; then \
	  BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/python; fi

# The adapters inside the hosts' real plugin runners (../shared/hosts), with a real malfamd.
# The web render configures Django for CAPE's real page, the runner tests load CAPE's modules
# with their own stand-ins: two pytest processes, so neither sees the other's setup.
check-hosts: all
	BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/hosts \
	  --ignore=tests/hosts/test_cape_web.py
	BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/hosts/test_cape_web.py

# Golden files of the offline commands (extract, train, patterns, score, eval): stdout + exit
# status against tests/golden/<case>.out; golden-update rewrites them (review the diff).
check-golden: $(BUILD)/malfam
	BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/golden/run.sh

golden-update: $(BUILD)/malfam
	BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/golden/run.sh --update

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

# Issue 16's scale benchmark at every size (500x50000 trains with --no-lstm: ~20 min); BENCH_SIZES="100x5000"
# picks sizes. `make bench` runs its smallest size (bench/bench_scale.sh), make check a tiny one.
BENCH_SIZES ?= 8x441 100x5000 500x50000
bench-scale: all
	BUILD=$(BUILD) PYTHON=$(PYTHON) BENCH_SIZES="$(BENCH_SIZES)" bash bench/bench_scale.sh
.PHONY: bench-scale

demo: deps-demo
	$(MAKE) all
	BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/demo.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)

# libFuzzer (clang): core/ and plugin/ rebuilt from source with coverage, ASan and UBSan into
# build/fuzz, one binary per tests/fuzz/fuzz_<x>.c in build/fuzz/bin, each run FUZZ_SECONDS s by
# tests/fuzz/run.sh (executions and crashes per target; crash inputs go to tests/fuzz/regress/).
# clang warnings are shown but not fatal here: the gcc builds keep -Werror.
FUZZ_SECONDS ?= 10
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

# plugin objects as an archive, so a target links only the members it uses
$(BUILD)/fuzz-plugin.a: $(DAEMON_OBJ) $(PROTO_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/bin/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/fuzz-plugin.a $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iplugin/malfamd -fsanitize=fuzzer $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	  EXTRA_CFLAGS=-Wno-error EXTRA_LDFLAGS="$(FUZZ_SAN)" \
	  $(patsubst %,$(FUZZ_BUILD)/bin/%,$(notdir $(basename $(FUZZ_SRC))))
	BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh \
	  $(notdir $(basename $(FUZZ_SRC)))

# ---- install: a distribution-style layout under $(DESTDIR)$(PREFIX) -------------------------
# make install PREFIX=/usr/local DESTDIR=/tmp/stage ; SYSCONFDIR/UNITDIR/MANDIR may be overridden.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/malfam
INSTALL    ?= install
MF_PYFILES := $(wildcard cuckoo_module/*.py)
# the settings files (kept when they exist) and the systemd units (the retraining timer is
# installed, not enabled)
MF_SETTINGS := malfamd.conf retrain.conf
MF_UNITS    := malfamd.service malfam-retrain.service malfam-retrain.timer
# PYTHONDIR, when set, also gets malfam_client.py (the Debian package: the system Python's path)
PYTHONDIR  ?=
# The settings file malfamd reads when no -c is given, from the prefix. main.o is rebuilt when
# it changes (another PREFIX): the stamp file holds the path and is rewritten only then.
MFD_CONFIG := $(SYSCONFDIR)/malfam/malfamd.conf
$(BUILD)/malfamd.config-path: FORCE
	@mkdir -p $(dir $@); echo '$(MFD_CONFIG)' | cmp -s - $@ || echo '$(MFD_CONFIG)' > $@
$(BUILD)/plugin/malfamd/main.o: $(BUILD)/malfamd.config-path
$(BUILD)/plugin/malfamd/main.o: CFLAGS += -DMFD_DEFAULT_CONFIG='"$(MFD_CONFIG)"'
.PHONY: FORCE
FORCE:

.PHONY: uninstall install-files install-cuckoo uninstall-cuckoo install-cape uninstall-cape
# install-files copies what is built (make deb passes its own malfamd), install builds first.
MALFAM_BIN  ?= $(BUILD)/malfam
MALFAMD_BIN ?= $(BUILD)/malfamd
install: all
	@$(MAKE) --no-print-directory install-files
install-files:
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/include/malfam $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/malfam $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(DATADIR)/cuckoo_module/templates/cape $(DESTDIR)$(DATADIR)/cuckoo_module/templates/cuckoo2
	$(INSTALL) -m 0755 $(MALFAM_BIN) $(DESTDIR)$(PREFIX)/bin/malfam
	$(INSTALL) -m 0755 $(MALFAMD_BIN) $(DESTDIR)$(PREFIX)/sbin/malfamd
	$(INSTALL) -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libmalfam.a
	$(INSTALL) -m 0644 $(MF_HEADERS) $(DESTDIR)$(PREFIX)/include/malfam/
	$(INSTALL) -m 0644 conf/man/malfam.1 $(DESTDIR)$(MANDIR)/man1/malfam.1
	$(INSTALL) -m 0644 conf/man/malfamd.conf.5 $(DESTDIR)$(MANDIR)/man5/malfamd.conf.5
	$(INSTALL) -m 0644 conf/man/malfamd.8 $(DESTDIR)$(MANDIR)/man8/malfamd.8
	@for f in $(MF_SETTINGS); do d=$(DESTDIR)$(SYSCONFDIR)/malfam/$$f; \
	  if [ -e $$d ]; then echo "kept $$d (exists; new default: $$f.dist)"; \
	    $(INSTALL) -m 0644 conf/$$f $$d.dist || exit 1; \
	  else $(INSTALL) -m 0644 conf/$$f $$d || exit 1; fi; done
	@# the units name the programs and settings under /usr/local: here, under the prefix
	for u in $(MF_UNITS); do \
	  sed -e 's|/usr/local/sbin/malfamd|$(PREFIX)/sbin/malfamd|g' \
	      -e 's|/usr/local/bin/malfam|$(PREFIX)/bin/malfam|g' \
	      -e 's|/usr/local/etc/malfam/|$(SYSCONFDIR)/malfam/|g' \
	      conf/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m 0644 $(MF_PYFILES) $(DESTDIR)$(DATADIR)/cuckoo_module/
	$(INSTALL) -m 0644 cuckoo_module/templates/cape/*.html $(DESTDIR)$(DATADIR)/cuckoo_module/templates/cape/
	$(INSTALL) -m 0644 cuckoo_module/templates/cuckoo2/*.html $(DESTDIR)$(DATADIR)/cuckoo_module/templates/cuckoo2/
	@# the host settings hostinstall.py merges in (it reads them from ../conf beside itself)
	$(INSTALL) -D -m 0644 -t $(DESTDIR)$(DATADIR)/conf/cuckoo conf/cuckoo/*.conf
	$(INSTALL) -D -m 0644 -t $(DESTDIR)$(DATADIR)/conf/cape conf/cape/analysis_services.py
	$(INSTALL) -D -m 0644 -t $(DESTDIR)$(DATADIR)/conf/cape/processing.conf.d conf/cape/processing.conf.d/malfam.conf
	$(INSTALL) -D -m 0644 -t $(DESTDIR)$(DATADIR)/conf/cape/reporting.conf.d conf/cape/reporting.conf.d/malfam.conf
	$(if $(PYTHONDIR),$(INSTALL) -D -m 0644 cuckoo_module/malfam_client.py $(DESTDIR)$(PYTHONDIR)/malfam_client.py)
	@echo "installed malfam under $(DESTDIR)$(PREFIX) (config $(DESTDIR)$(MFD_CONFIG), unit $(DESTDIR)$(UNITDIR)/malfamd.service)"

# On uninstall systemd's manager is told (units stopped and disabled before their files go,
# then reloaded): an enabled timer would otherwise keep firing a service whose files are gone.
# Only from the running system (no DESTDIR, systemd running) and only when this installation's
# unit is where systemd reads units, so that another installation's malfamd is left alone.
# SYSTEMCTL= (empty) never tells it. make expands a recipe before its first line runs, so the
# unit file is looked for before it is removed.
SYSTEMCTL        ?= systemctl
SYSTEMD_RUNNING  ?= $(wildcard /run/systemd/system)
SYSTEMD_UNITDIRS ?= /etc/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system \
                    /lib/systemd/system
MF_TELL_SYSTEMD   = $(if $(DESTDIR),,$(and $(SYSTEMCTL),$(SYSTEMD_RUNNING),\
                    $(filter $(UNITDIR),$(SYSTEMD_UNITDIRS)),$(wildcard $(UNITDIR)/malfamd.service)))
uninstall:
	$(if $(MF_TELL_SYSTEMD),-$(SYSTEMCTL) disable --now malfam-retrain.timer malfam-retrain.service malfamd.service)
	rm -f $(DESTDIR)$(PREFIX)/bin/malfam $(DESTDIR)$(PREFIX)/sbin/malfamd \
	  $(DESTDIR)$(PREFIX)/lib/libmalfam.a $(DESTDIR)$(MANDIR)/man1/malfam.1 \
	  $(DESTDIR)$(MANDIR)/man5/malfamd.conf.5 $(DESTDIR)$(MANDIR)/man8/malfamd.8 \
	  $(addprefix $(DESTDIR)$(UNITDIR)/,$(MF_UNITS)) \
	  $(addsuffix .dist,$(addprefix $(DESTDIR)$(SYSCONFDIR)/malfam/,$(MF_SETTINGS))) \
	  $(if $(PYTHONDIR),$(DESTDIR)$(PYTHONDIR)/malfam_client.py)
	rm -rf $(DESTDIR)$(PREFIX)/include/malfam $(DESTDIR)$(DATADIR)
	$(if $(MF_TELL_SYSTEMD),-$(SYSTEMCTL) daemon-reload)
	@echo "kept $(addprefix $(DESTDIR)$(SYSCONFDIR)/malfam/,$(MF_SETTINGS)) (your settings); remove them by hand if unwanted"

# ---- deb: a Debian package of what `make install PREFIX=/usr` puts down ----------------------
# $(BUILD)/malfam_<version>_<arch>.deb; the settings are a conffile, /etc/malfam/malfamd.conf,
# the maintainer scripts (packaging/debian/) make the malfam user and start the service.
DEB_VERSION    ?= $(shell sed -n 's/^\#define MF_VERSION "\(.*\)"/\1/p' core/mf.h)-1
DEB_ARCH       := $(shell dpkg --print-architecture 2>/dev/null)
DEB_MAINTAINER ?= malfam maintainers <malfam@example.org>
DEB_FILE       := $(BUILD)/malfam_$(DEB_VERSION)_$(DEB_ARCH).deb
# The package's programs are linked apart (the build's, which tests may be running, are left
# alone): read-only relocations bound at start, and malfamd's own main.o, whose default
# settings file is /etc/malfam/malfamd.conf.
DEB_LDFLAGS := -Wl,-z,relro,-z,now
$(BUILD)/deb-bin/main.o: plugin/malfamd/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DMFD_DEFAULT_CONFIG='"/etc/malfam/malfamd.conf"' -c -o $@ $<
$(BUILD)/deb-bin/malfamd: $(BUILD)/deb-bin/main.o $(DAEMON_OBJ) $(PROTO_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $(DEB_LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/deb-bin/malfam: $(CLI_OBJ) $(PROTO_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(DEB_LDFLAGS) -o $@ $^ $(LDLIBS)
.PHONY: deb
deb: all $(BUILD)/deb-bin/malfamd $(BUILD)/deb-bin/malfam
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory -s install-files PREFIX=/usr DESTDIR=$(abspath $(BUILD)/deb) \
	  UNITDIR=/lib/systemd/system PYTHONDIR=/usr/lib/python3/dist-packages \
	  MALFAM_BIN=$(BUILD)/deb-bin/malfam MALFAMD_BIN=$(BUILD)/deb-bin/malfamd >/dev/null
	bash packaging/debian/mkdeb.sh $(abspath $(BUILD)/deb) $(DEB_FILE) $(DEB_VERSION) \
	  $(DEB_ARCH) "$(DEB_MAINTAINER)"

# Cuckoo 2.0.x: the modules go into the installed cuckoo package (the only place Cuckoo 2
# loads processing modules from). CUCKOO_PKG=.../site-packages/cuckoo, or CUCKOO_PYTHON=
# the interpreter Cuckoo runs on; by default the `cuckoo` command's interpreter is asked.
CUCKOO_PKG    ?=
CUCKOO_PYTHON ?=
HOSTINSTALL = $(PYTHON) cuckoo_module/hostinstall.py
CUCKOO_ARGS = $(if $(CUCKOO_PKG),--pkg $(CUCKOO_PKG)) $(if $(CUCKOO_PYTHON),--python $(CUCKOO_PYTHON)) \
              $(if $(CWD),--cwd $(CWD))
install-cuckoo:
	$(HOSTINSTALL) install-cuckoo $(CUCKOO_ARGS)
uninstall-cuckoo:
	$(HOSTINSTALL) uninstall-cuckoo $(CUCKOO_ARGS)

# CAPEv2: CAPE=/opt/CAPEv2 (the checkout root).
install-cape:
	$(HOSTINSTALL) install-cape --cape $(CAPE)
uninstall-cape:
	$(HOSTINSTALL) uninstall-cape --cape $(CAPE)

# ---- malfamd under valgrind, and the long soak ----------------------------------------------
# valgrind-daemon: daemon_basic.sh with malfamd under memcheck; prints errors and definite
# leaks per daemon run. soak: kill -9 x100 during write-back, 64 clients for SOAK_SECONDS,
# fuzz for 60 s per target; prints the figures.
valgrind-daemon: all
	BUILD=$(BUILD) bash tests/integration/daemon_valgrind.sh

SOAK_SECONDS ?= 60
soak: all $(BUILD)/bench_load
	BUILD=$(BUILD) SOAK_SECONDS=$(SOAK_SECONDS) MFD_KILL_TRIALS=100 \
	  bash tests/integration/daemon_soak.sh > $(BUILD)/soak.log 2>&1; s=$$?; cat $(BUILD)/soak.log; \
	  exit $$s
	BUILD=$(BUILD) PYTHON=$(PYTHON) MFD_SWAP_STARTS=400 MFD_RELOADS=400 bash tests/integration/daemon_ops.sh
	@if [ -n "$(FUZZ_SRC)" ] && grep -q '^fuzz:' Makefile; then \
	  $(MAKE) --no-print-directory FUZZ_BUILD=$(BUILD)-fuzz fuzz FUZZ_SECONDS=60 \
	    > $(BUILD)/soak-fuzz.log 2>&1; s=$$?; grep -vE '^(clang|cc|rm|ar|make)' \
	    $(BUILD)/soak-fuzz.log | tail -20; exit $$s; fi
	@grep '^soak:' $(BUILD)/soak.log
.PHONY: valgrind-daemon soak
