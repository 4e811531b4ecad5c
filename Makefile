# TOROS Manager: a development venv and its tests, and the system install of
# the five daemons with their systemd units (Linux) or launchd plists (macOS).
# `make help` lists the targets; variables are set as `make VAR=value`.

.DEFAULT_GOAL := all

# ---------------------------------------------------------------------------
# Variables you may set
# ---------------------------------------------------------------------------

# Interpreter for the development venv, and the venv itself.
PYTHON ?= python3
VENV ?= .venv
# Extra arguments for `make test`, e.g. PYTEST_ARGS="-k units -x".
PYTEST_ARGS ?=
# Test processes (pytest-xdist), each taking whole test files. Most tests wait on daemons,
# so three share two cores well: the suite takes about 14 min instead of 25 on 2 cores.
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3
# Where the tests write (TMPDIR): about 2 GB at once, nearly 4 GB as root (staged installs
# of the venv). On disk, /var/tmp, unless TMPDIR names a place: Debian 13 keeps /tmp in
# memory, half the RAM at most, and a 4 GB machine's /tmp could not hold them.
TEST_TMPDIR ?= $(or $(TMPDIR),/var/tmp)

# Where `make install` puts things. DESTDIR stages the whole tree below
# another directory (packaging, tests): nothing outside it is touched then.
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_VENV ?= $(PREFIX)/lib/toros-manager/venv
BINDIR ?= $(PREFIX)/bin
DOCDIR ?= $(PREFIX)/share/doc/toros-manager
CONFIG_FILE ?= $(CONFIG_DIR)/toros.conf.yaml
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
LAUNCHD_DIR ?= /Library/LaunchDaemons
# Where installs before the LaunchDaemons put their plists (LaunchAgents).
OLD_LAUNCHD_DIR := /Library/LaunchAgents
# Unload such an agent, $(1) the service and $(2) its plist: from the system domain (sudo
# launchctl load put it there) and from each user's session (a login loads it there).
unload_agent = launchctl unload "$(2)" 2>/dev/null || true; \
  for uid in `dscl . -list /Users UniqueID | awk '$$2 >= 500 {print $$2}'`; do \
    launchctl bootout gui/$$uid/org.toros.$(1) 2>/dev/null || true; done
# Where `make` renders the units and plists.
BUILD ?= build
# `make uninstall PURGE=1` also removes config, data, logs and the user.
PURGE ?=
# Users who may run `toros` and read the daemons' journal without sudo:
# `sudo make install OPERATORS="alice bob"` adds them to the groups toros and
# systemd-journal (Linux; macOS: toros). They log in again for it to apply.
OPERATORS ?=
# The lock file: the exact version and sha256 of every package the installed
# daemons use, optional parts included, so that two sites installing a month
# apart run the same code. `make lock` refreshes it; `make test` uses it too.
# LOCK= (empty) installs the newest versions setup.py allows instead.
LOCK ?= requirements/install.txt
# A folder holding every file of LOCK (`make wheelhouse WHEELHOUSE=DIR`), so
# that `sudo make install WHEELHOUSE=DIR` needs no network (pip --no-index).
WHEELHOUSE ?=

# The interpreter the install venv is made from; empty means: $(PYTHON),
# unless that lives under /root or /home (pyenv's default), then
# /usr/bin/python3. Why: a venv only links to its interpreter and standard
# library, and the services run as user toros with ProtectHome=yes, which
# hides /root and /home (and /root is mode 0700 anyway). Copying the
# interpreter (`venv --copies`) does not copy the standard library, and
# ProtectHome=read-only would not help with 0700, so the install is made from
# a Python outside /root and /home; one inside them is refused.
INSTALL_PYTHON ?=

UNAME := $(shell uname -s)
ifeq ($(UNAME),Darwin)
INIT_SYSTEM ?= launchd
else
INIT_SYSTEM ?= systemd
endif

# ---------------------------------------------------------------------------
# Fixed names: they must agree with the units (StateDirectory=toros,
# LogsDirectory=toros, User=toros) and with etc/toros/toros.conf.yaml.
# ---------------------------------------------------------------------------
TOROS_USER := toros
CONFIG_DIR := /etc/toros
STATE_DIR := /var/lib/toros
DATA_DIR := $(STATE_DIR)/data
LOG_DIR := /var/log/toros
SERVICES := scheduler telescope dome preprocessor alerts
# The systemd target that starts and stops the five together (systemd/toros.target.in).
TARGET := toros.target
PROGRAMS := $(addprefix toros-,$(SERVICES)) toros
SHIPPED_CONFIG := etc/toros/toros.conf.yaml
# The drop-in that keeps the services on loopback (systemd/loopback-only.conf),
# installed as $(SYSTEMD_UNIT_DIR)/<service>.service.d/$(LOOPBACK_DROP_IN).
LOOPBACK_DROP_IN := loopback-only.conf

VENV_PY := $(VENV)/bin/python
# Marks the editable install; redone when setup.py changes.
DEV_STAMP := $(VENV)/.toros-dev-installed
# DESTDIR made absolute: the venv writes absolute paths into its scripts,
# which install-venv rewrites from $(DEST)$(INSTALL_VENV) to $(INSTALL_VENV).
DEST := $(if $(strip $(DESTDIR)),$(abspath $(DESTDIR)))
STAGED_VENV := $(DEST)$(INSTALL_VENV)

# The oldest Python the lock installs on (astropy 8 and numpy 2.4 need 3.11),
# as setup.py's python_requires says it; the README says the same. Read only
# where a venv is made (`=`): rendering the units needs no setup.py.
MIN_PYTHON = $(shell sed -n 's/^ *python_requires=">=\([0-9.]*\)",$$/\1/p' setup.py)

# Shell snippet: stop, saying why, unless the interpreter $(1) is at least
# MIN_PYTHON; $(2) is the variable that names another (PYTHON, INSTALL_PYTHON).
# Without it pip fails later, on the first locked package that has no files
# for that Python.
define require_python
min='$(MIN_PYTHON)'; [ -n "$$min" ] || { \
  echo "error: setup.py names no python_requires=\">=X.Y\"" >&2; exit 1; }; \
command -v $(1) >/dev/null 2>&1 || { \
  echo "error: no $(1) here; TOROS Manager needs Python $$min or newer: set $(2)=" >&2; \
  exit 1; }; \
$(1) -c "import sys; sys.exit(sys.version_info[:2] < tuple(map(int, '$$min'.split('.'))))" || { \
  echo "error: $(1) is Python `$(1) -c 'import platform; print(platform.python_version())'`; TOROS Manager needs Python $$min or newer." >&2; \
  echo "       Debian 12 and later have one as python3; on macOS, install one (python.org, or brew install python)" >&2; \
  echo "       and name it, e.g. $(2)=python3.13" >&2; \
  exit 1; }
endef

# Shell snippet: set the shell variable py to the interpreter the install venv
# is made from (see INSTALL_PYTHON); `make wheelhouse` fetches files for it.
define install_python
py='$(INSTALL_PYTHON)'; \
if [ -z "$$py" ]; then \
  py=`$(PYTHON) -c 'import sys; print(sys.executable)'`; \
  case "`$$py -c 'import sys; print(sys.base_prefix)'`/" in /root/*|/home/*) \
    if [ "$(UNAME)" = Linux ] && [ -x /usr/bin/python3 ]; then \
      echo "note: $$py lives under /root or /home, hidden from the services (ProtectHome=yes):"; \
      echo "      the install venv is made from /usr/bin/python3 (set INSTALL_PYTHON to choose)"; \
      py=/usr/bin/python3; fi;; \
  esac; \
fi
endef

# Shell snippet: stop unless the interpreter $(1) can make a venv. Debian
# ships ensurepip apart (python3-venv), so `python3 -m venv` fails without
# it; as root we install it for Debian's own /usr/bin/python3*.
define require_venv_module
if ! $(1) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
  case "`command -v $(1)`" in /usr/bin/python3*|/bin/python3*) \
    if [ "`id -u`" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
      echo "$(1) has no venv module: installing Debian's python3-venv"; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; }; \
    fi;; \
  esac; \
  $(1) -c 'import ensurepip, venv' >/dev/null 2>&1 || { \
    echo "error: $(1) cannot create virtual environments (no ensurepip/venv module)." >&2; \
    echo "       On Debian/Ubuntu: sudo apt-get install python3-venv" >&2; \
    exit 1; }; \
fi
endef

# Shell snippet: fail unless the path variable $(1) is absolute, without
# spaces (a unit's ExecStart= would split it).
define require_absolute
case "$($(1))" in \
  *" "*) echo "error: $(1)='$($(1))' contains a space" >&2; exit 1;; \
  /*) ;; \
  *) echo "error: $(1)='$($(1))' is empty or not an absolute path: the units' ExecStart would be wrong" >&2; exit 1;; \
esac
endef

# setup.py's optional parts that the lock (and so every install) includes:
# kafka (GCN Kafka, gcn-kafka) and vtp (VOEvent Transport, pygcn) for the
# alerts daemon, indi (indipyclient) and lx200 (pyserial) for the device
# drivers, dask and cosmics (astroscrappy) for the preprocessor. Each is off
# until the configuration turns it on.
LOCKED_EXTRAS := kafka vtp indi lx200 dask cosmics
comma := ,
OPTIONAL_EXTRAS := $(subst $() $(),$(comma),$(LOCKED_EXTRAS))
# pip-tools, which writes the lock, in a venv of its own under $(BUILD).
TOOLS_VENV := $(BUILD)/tools-venv
PIP_TOOLS := pip-tools==7.6.2
# pip's options for installing from the lock: no index, only WHEELHOUSE, when set.
PIP_SOURCE = $(if $(strip $(WHEELHOUSE)),--no-index --find-links "$(abspath $(WHEELHOUSE))")

# Shell snippet: install LOCK into the venv whose python is $(1), then the
# checkout $(2) (a directory) without its dependencies, and `pip check` that
# nothing is missing. setuptools, the checkout's build backend, is in LOCK
# and goes first, so that builds need no index (--no-build-isolation).
define install_locked
pip="$(1) -m pip --disable-pip-version-check"; \
lockdir=`mktemp -d`; \
awk '/^setuptools==/{p=1} p{print; if ($$0 !~ /\\$$/) exit}' "$(LOCK)" > "$$lockdir/build.txt"; \
test -s "$$lockdir/build.txt" || { echo "error: $(LOCK) pins no setuptools (make lock)" >&2; rm -rf "$$lockdir"; exit 1; }; \
echo "pip install -r $(LOCK) (exact versions, sha256-checked$(if $(strip $(WHEELHOUSE)), from $(WHEELHOUSE) with no index))"; \
PIP_ROOT_USER_ACTION=ignore $$pip install --no-compile --require-hashes --no-deps $(PIP_SOURCE) -r "$$lockdir/build.txt" \
  && PIP_ROOT_USER_ACTION=ignore $$pip install --no-compile --require-hashes --no-deps --no-build-isolation --use-pep517 $(PIP_SOURCE) -r "$(LOCK)" \
  && PIP_ROOT_USER_ACTION=ignore $$pip install --no-compile --no-deps --no-build-isolation --use-pep517 --no-index $(3) "$(2)" \
  && $$pip check; status=$$?; rm -rf "$$lockdir"; test $$status = 0
endef

# Shell snippet: stop unless LOCK names a file.
define require_lock
if [ -z "$(LOCK)" ]; then echo "error: LOCK is empty: name the lock file" >&2; exit 1; fi
endef

# Only root can chown, and only to a user that exists.
CAN_CHOWN = [ "`id -u`" = 0 ] && id $(TOROS_USER) >/dev/null 2>&1
# macOS: the service user's ID is the first free one from here, below 500, where the login
# window shows no user (the system's own accounts are below 300).
DARWIN_FIRST_UID := 300
DARWIN_LAST_UID := 499

# The groups an operator joins to use `toros` (the config is 0640 root:toros)
# and `journalctl -u <service>` without sudo, and how.
ifeq ($(UNAME),Darwin)
OPERATOR_GROUPS := $(TOROS_USER)
ADD_OPERATOR_HOW := sudo dseditgroup -o edit -a NAME -t user $(TOROS_USER)
else
OPERATOR_GROUPS := $(TOROS_USER),systemd-journal
ADD_OPERATOR_HOW := sudo usermod -aG $(OPERATOR_GROUPS) NAME
endif

.PHONY: all help dev lock wheelhouse deb units test demo install install-check install-umask \
        install-venv install-links install-init install-user install-operators install-dirs \
        install-config install-docs install-loopback-only uninstall-loopback-only uninstall clean \
        distclean

# Only what `make install` uses: no venv (`make test` and `make demo` make theirs).
all: units ## render the units, target and plists the install uses (no venv; needs only sed)

help: ## list the targets
	@echo "Targets:"
	@sed -n 's/^\([a-z-]*\):.*## \(.*\)/  \1: \2/p' $(MAKEFILE_LIST)
	@echo "Variables: PYTHON=$(PYTHON) VENV=$(VENV) PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"
	@echo "  INSTALL_VENV=$(INSTALL_VENV) BINDIR=$(BINDIR) CONFIG_FILE=$(CONFIG_FILE)"
	@echo "  SYSTEMD_UNIT_DIR=$(SYSTEMD_UNIT_DIR) LAUNCHD_DIR=$(LAUNCHD_DIR) INIT_SYSTEM=$(INIT_SYSTEM)"
	@echo "  INSTALL_PYTHON=$(INSTALL_PYTHON) BUILD=$(BUILD) PYTEST_ARGS=$(PYTEST_ARGS) TEST_WORKERS=$(TEST_WORKERS) TEST_TMPDIR=$(TEST_TMPDIR)"
	@echo "  PURGE=$(PURGE) OPERATORS=$(OPERATORS) LOCK=$(LOCK) WHEELHOUSE=$(WHEELHOUSE)"
	@echo "  DIST=$(DIST) DEB_COMPRESSION=$(DEB_COMPRESSION) DEB_MAINTAINER=$(DEB_MAINTAINER)"

# ---------------------------------------------------------------------------
# Development
# ---------------------------------------------------------------------------

dev: $(DEV_STAMP) ## create the dev venv (VENV): the locked versions (LOCK), the package editable, pytest

$(VENV_PY):
	@$(call require_python,$(PYTHON),PYTHON)
	@$(call require_venv_module,$(PYTHON))
	$(PYTHON) -m venv $(VENV)

# The locked versions first (those the install uses), then pytest and the
# other test tools around them.
$(DEV_STAMP): setup.py $(LOCK) | $(VENV_PY)
	@set -e; if [ -n "$(LOCK)" ]; then $(call install_locked,$(VENV_PY),.,-e); fi
	$(VENV_PY) -m pip install --disable-pip-version-check -e ".[test]"
	@echo "compiling the venv's bytecode"
	@$(call compile_bytecode,$(VENV)/lib)
	@touch $@

# Bytecode of the files under $(1), written now, in parallel, where it is missing or stale.
# Where PYTHONDONTWRITEBYTECODE is set (some CI machines set it) Python writes none itself, and
# every daemon's start compiled the modules it imports again, astropy's too: half the CPU
# time of its start (0.6-2.1 s each of the five). -W: a package's own invalid escapes are
# nothing the one running make can act on.
define compile_bytecode
$(VENV_PY) -W ignore::SyntaxWarning -m compileall -qq -j 0 $(1)
endef

# -rs: each test skipped on this machine is listed with why (a Debian package to install, say);
# a later -r in PYTEST_ARGS (.ci/run's -ra) replaces it.
test: dev ## make the dev venv with what the tests need, check the type hints (mypy), run pytest (PYTEST_ARGS)
	@$(call compile_bytecode,torosmanager)
	$(VENV_PY) -m mypy torosmanager
	TMPDIR="$(TEST_TMPDIR)" $(VENV_PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -rs $(PYTEST_ARGS)

demo: dev ## make the dev venv, then run the demo night (toros demo)
	@$(call compile_bytecode,torosmanager)
	$(VENV)/bin/toros demo

# ---------------------------------------------------------------------------
# The lock file, and a wheelhouse of its files for installing offline
# ---------------------------------------------------------------------------

$(TOOLS_VENV)/bin/pip-compile:
	@$(call require_python,$(PYTHON),PYTHON)
	@$(call require_venv_module,$(PYTHON))
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(PIP_TOOLS)"

lock: $(TOOLS_VENV)/bin/pip-compile ## refresh LOCK: the newest versions setup.py allows, with sha256 (pip-compile); then make test
	@$(call require_lock)
	CUSTOM_COMPILE_COMMAND="make lock" $(TOOLS_VENV)/bin/pip-compile --quiet --upgrade \
	  --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	  --no-emit-index-url --no-emit-find-links \
	  $(addprefix --extra=,$(LOCKED_EXTRAS)) --output-file=$(LOCK) setup.py
	@echo "wrote $(LOCK): `grep -c '^[A-Za-z0-9]' $(LOCK)` packages"

wheelhouse: $(TOOLS_VENV)/bin/pip-compile ## download every file of LOCK into WHEELHOUSE=DIR, for an install with no network
	@$(call require_lock)
	@if [ -z "$(strip $(WHEELHOUSE))" ]; then \
	  echo "error: name the folder: make wheelhouse WHEELHOUSE=DIR" >&2; exit 1; fi
	@set -e; $(install_python); \
	$(call require_python,$$py,INSTALL_PYTHON); \
	version=`$$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'`; \
	echo "pip download -r $(LOCK), the files for Python $$version ($$py)"; \
	$(TOOLS_VENV)/bin/python -m pip download --disable-pip-version-check --no-deps \
	  --python-version "$$version" --require-hashes --dest "$(WHEELHOUSE)" -r $(LOCK); \
	echo "$(WHEELHOUSE): `ls "$(WHEELHOUSE)" | wc -l` files for $(LOCK), for `uname -sm` and" \
	  "Python $$version; on a machine like this one, with the checkout:" \
	  "sudo make install WHEELHOUSE=$(WHEELHOUSE)"

# ---------------------------------------------------------------------------
# Units, target and plists, rendered with the INSTALL's paths (not the dev
# venv's). Always re-rendered (cheap), so a changed PREFIX is never left stale.
# Rendered by root (`sudo make install` before any `make`), $(BUILD) is then
# given to the owner of the directory it is in, so that a later `make` as that
# user can render again; a $(BUILD) that an older install left to root is
# named, with the fix.
# ---------------------------------------------------------------------------

RENDER = sed -e 's|@VENV@|$(INSTALL_VENV)|g' -e 's|@CONFIG@|$(CONFIG_FILE)|g' \
             -e 's|@DOCDIR@|$(DOCDIR)|g' -e 's|@STATE_DIR@|$(STATE_DIR)|g' \
             -e 's|@LOG_DIR@|$(LOG_DIR)|g'

units: ## render build/systemd/*.service, build/systemd/toros.target and build/launchd/*.plist
	@$(call require_absolute,PREFIX)
	@$(call require_absolute,INSTALL_VENV)
	@$(call require_absolute,CONFIG_FILE)
	@for d in $(BUILD) $(BUILD)/systemd $(BUILD)/launchd; do \
	  if [ -e "$$d" ] && [ ! -w "$$d" ]; then \
	    echo "error: $$d is not writable by `id -un` (left to root by an older sudo make install?)" >&2; \
	    echo "       remove it once: sudo rm -rf $(BUILD)" >&2; exit 1; fi; \
	done
	@mkdir -p $(BUILD)/systemd $(BUILD)/launchd
	@set -e; target=$(BUILD)/systemd/$(TARGET); rm -f $$target; \
	$(RENDER) systemd/$(TARGET).in > $$target; \
	if grep -n '@[A-Z_]*@' $$target >&2; then \
	  echo "error: placeholders left unrendered (above)" >&2; rm -f $$target; exit 1; fi; \
	for s in $(SERVICES); do \
	  unit=$(BUILD)/systemd/$$s.service; plist=$(BUILD)/launchd/org.toros.$$s.plist; \
	  rm -f $$unit $$plist; \
	  $(RENDER) systemd/$$s.service.in > $$unit; \
	  $(RENDER) -e "s|@SERVICE@|$$s|g" launchd/org.toros.service.plist.in > $$plist; \
	  if ! grep -Eq "^ExecStart=/[^ ]+/bin/toros-$$s --config /" $$unit; then \
	    echo "error: $$unit: ExecStart is missing, empty or not an absolute path to toros-$$s" >&2; \
	    rm -f $$unit $$plist; exit 1; fi; \
	  if ! grep -Eq "<string>/[^<]+/bin/toros-$$s</string>" $$plist; then \
	    echo "error: $$plist: ProgramArguments lacks an absolute path to toros-$$s" >&2; \
	    rm -f $$unit $$plist; exit 1; fi; \
	  if grep -n '@[A-Z_]*@' $$unit $$plist >&2; then \
	    echo "error: placeholders left unrendered (above)" >&2; rm -f $$unit $$plist; exit 1; fi; \
	done
	@if [ "`id -u`" = 0 ]; then \
	  owner=`ls -nd "$(BUILD)/.." | awk '{print $$3 ":" $$4}'`; \
	  if [ "$$owner" != "0:0" ]; then chown -R "$$owner" "$(BUILD)"; fi; \
	fi
	@echo "rendered $(BUILD)/systemd and $(BUILD)/launchd for $(INSTALL_VENV)"

# ---------------------------------------------------------------------------
# Install. Each step may be run alone (e.g. `make install-config`).
# ---------------------------------------------------------------------------

install: install-venv install-links install-docs install-init install-user install-operators install-dirs install-config ## install the locked venv (LOCK, WHEELHOUSE), links, units, user, dirs, config, OPERATORS (root, or DESTDIR=)
	@echo "installed TOROS Manager into $(DEST)$(INSTALL_VENV)"
ifeq ($(INIT_SYSTEM),launchd)
	@echo "start each daemon (and at every boot): sudo launchctl bootstrap system $(LAUNCHD_DIR)/org.toros.<service>.plist"
	@echo "  for <service> in: $(SERVICES)"
else
	@echo "start the five daemons in order (and at every boot): sudo systemctl enable --now $(TARGET)"
endif
	@echo "operators: to run toros and read the logs without sudo, a user joins the group(s) $(OPERATOR_GROUPS):"
	@echo "  $(ADD_OPERATOR_HOW)   (or: sudo make install OPERATORS=\"NAME ...\")"
	@echo "  then logs out and in again: groups are read at login"

# Whatever umask the one installing has (a hardened root's 027 or 077), what the install and
# `make deb` write gets the modes of umask 022, as dpkg-buildpackage does: the services' user,
# toros, must read the venv, the units and /etc/toros (else the services fail to start), and
# a package's files are read by everyone. What is private gets its mode explicitly (the config
# 0640, the state and log directories 0750). Target-specific .SHELLFLAGS needs GNU make 3.82
# or newer; with an older one (macOS's /usr/bin/make is 3.81) install-umask stops instead.
INSTALL_UMASK := 022
install install-check install-umask install-venv install-links install-docs install-init \
install-user install-operators install-dirs install-config install-loopback-only deb: \
  .SHELLFLAGS = -c 'umask $(INSTALL_UMASK) && eval "$$1"' sh

install-umask:
	@if [ $$(( 0`umask` & ~0$(INSTALL_UMASK) & 0777 )) != 0 ]; then \
	  echo "error: umask `umask` would leave the installed files unreadable to user $(TOROS_USER)" \
	    "(this make, `$(MAKE) --version | head -n 1`, cannot set it for the install:" \
	    "GNU make 3.82 or newer does)" >&2; \
	  echo "       install with umask $(INSTALL_UMASK): (umask $(INSTALL_UMASK) && sudo make install)" >&2; \
	  exit 1; fi

install-check:
	@if [ -z "$(DEST)" ] && [ "`id -u`" != 0 ]; then \
	  echo "error: installing into / needs root: sudo make install (or stage it: make install DESTDIR=/some/dir)" >&2; \
	  exit 1; fi

# The venv is made once and upgraded in place; pip does not compile here so
# that the bytecode can be compiled with the final paths (compileall -s/-p).
install-venv: install-check install-umask
	@$(call require_absolute,INSTALL_VENV)
	@set -e; $(install_python); \
	$(call require_python,$$py,INSTALL_PYTHON); \
	$(call require_venv_module,$$py); \
	if [ "$(UNAME)" = Linux ]; then \
	  case "`$$py -c 'import sys; print(sys.base_prefix)'`/" in /root/*|/home/*) \
	    echo "error: INSTALL_PYTHON=$$py lives under /root or /home, which the services cannot read;" >&2; \
	    echo "       set INSTALL_PYTHON to a Python outside them (e.g. /usr/bin/python3)" >&2; \
	    exit 1;; \
	  esac; \
	fi; \
	if [ ! -x "$(STAGED_VENV)/bin/python" ]; then \
	  echo "creating $(STAGED_VENV) with $$py"; \
	  "$$py" -m venv "$(STAGED_VENV)"; \
	fi
	@# pip builds in the source tree; from a copy, so that `sudo make install`
	@# leaves no root-owned build/ or *.egg-info behind.
	@set -e; src=`mktemp -d`; trap 'rm -rf "$$src"' EXIT; \
	tar -cf - --exclude=./.git --exclude=./$(VENV) --exclude=./build --exclude=./$(BUILD) \
	  $(if $(DESTDIR),--exclude=./$(DESTDIR)) --exclude='*.egg-info' --exclude=__pycache__ . | tar -xf - -C "$$src"; \
	echo "installing into $(STAGED_VENV)"; \
	if [ -n "$(LOCK)" ]; then \
	  $(call install_locked,"$(STAGED_VENV)/bin/python",$$src,); \
	else \
	  echo "LOCK is empty: pip install --upgrade .[$(OPTIONAL_EXTRAS)], the newest versions setup.py allows"; \
	  PIP_ROOT_USER_ACTION=ignore "$(STAGED_VENV)/bin/python" -m pip install $(PIP_SOURCE) \
	    --disable-pip-version-check --no-compile --use-pep517 --upgrade "$$src[$(OPTIONAL_EXTRAS)]"; \
	fi
	@# pip recorded where it installed the package from (PEP 610's direct_url.json): the copy
	@# above, gone now; without the record, the package is the release its metadata names.
	@rm -f "$(STAGED_VENV)"/lib/python*/site-packages/torosmanager-*.dist-info/direct_url.json
	@# Staged, the bytecode pip and setuptools wrote of themselves while they ran names the
	@# staged path: removed, and compiled again below with the final one. (Forcing every
	@# file instead, -f, took 25 s of each staged install: 7,000 files.) Both run with -B:
	@# their own start imports setuptools' _distutils_hack (its .pth), and bytecode written
	@# then would name the staged path and look up to date to compileall.
	@if [ -n "$(DEST)" ]; then \
	  "$(STAGED_VENV)/bin/python" -B -c 'import pathlib, sys; staged = sys.argv[1].encode(); \
	    [path.unlink() for path in pathlib.Path(sys.argv[1], "lib").rglob("*.pyc") \
	     if staged in path.read_bytes()]' "$(STAGED_VENV)"; \
	fi
	@# -W: a package's own invalid escapes (pyavm's tests, a SyntaxWarning from Python 3.12)
	@# are nothing the one installing can act on.
	-@"$(STAGED_VENV)/bin/python" -B -W ignore::SyntaxWarning -m compileall -qq -j 0 \
	  $(if $(DEST),-s "$(DEST)" -p /) "$(STAGED_VENV)/lib"
	@# Scripts staged under DESTDIR name the staged python; point them (and
	@# bin/activate*, pyvenv.cfg) at the final $(INSTALL_VENV).
	@if [ -n "$(DEST)" ]; then \
	  for f in `grep -rlIF "$(STAGED_VENV)" "$(STAGED_VENV)/bin" "$(STAGED_VENV)/pyvenv.cfg"`; do \
	    sed -e 's|$(STAGED_VENV)|$(INSTALL_VENV)|g' "$$f" > "$$f.tmp" && cat "$$f.tmp" > "$$f" && rm -f "$$f.tmp"; \
	  done; \
	  echo "rewrote script paths from $(STAGED_VENV) to $(INSTALL_VENV)"; \
	fi

install-links: install-check install-umask ## symlink the five programs into BINDIR
	@mkdir -p "$(DEST)$(BINDIR)"
	@for p in $(PROGRAMS); do \
	  ln -sfn "$(INSTALL_VENV)/bin/$$p" "$(DEST)$(BINDIR)/$$p"; \
	  echo "$(DEST)$(BINDIR)/$$p -> $(INSTALL_VENV)/bin/$$p"; \
	done

# The units' Documentation= points here.
# The README and docs/ keep the tree they have here, so that the README's links (docs/...) and
# the docs' own (devices/...) lead to the installed files. Installs before 2026-12 put the docs
# beside the README: those copies are removed, so that an upgraded install has one of each.
install-docs: install-check install-umask
	@mkdir -p "$(DEST)$(DOCDIR)/docs/devices" "$(DEST)$(DOCDIR)/etc/toros"
	@cp README.md "$(DEST)$(DOCDIR)/"
	@# The annotated defaults, where the README's and configuration.md's links lead.
	@cp etc/toros/toros.conf.yaml "$(DEST)$(DOCDIR)/etc/toros/"
	@for f in docs/*.md docs/devices/*.md; do \
	  if [ -f "$$f" ]; then cp "$$f" "$(DEST)$(DOCDIR)/$$f"; fi; \
	  rm -f "$(DEST)$(DOCDIR)/`echo $$f | sed 's|^docs/||'`"; \
	done
	@rmdir "$(DEST)$(DOCDIR)/devices" 2>/dev/null || true

install-init: install-check install-umask units ## install the units and toros.target (Linux) or the plists (macOS)
ifeq ($(INIT_SYSTEM),launchd)
	@mkdir -p "$(DEST)$(LAUNCHD_DIR)"
	install -m 0644 $(foreach s,$(SERVICES),$(BUILD)/launchd/org.toros.$(s).plist) "$(DEST)$(LAUNCHD_DIR)/"
	@# Older installs put LaunchAgents there, which ran as whoever loaded them and only
	@# after a login: unloaded (from the system and from every user's session, where
	@# launchd started them at each login) and removed, the LaunchDaemons above replace them.
	@for s in $(SERVICES); do \
	  agent="$(DEST)$(OLD_LAUNCHD_DIR)/org.toros.$$s.plist"; \
	  if [ -f "$$agent" ]; then \
	    if [ -z "$(DEST)" ]; then $(call unload_agent,$$s,$$agent); fi; \
	    rm -f "$$agent"; echo "removed the older $$agent (now $(LAUNCHD_DIR))"; fi; \
	done
else
	@mkdir -p "$(DEST)$(SYSTEMD_UNIT_DIR)"
	install -m 0644 $(foreach s,$(SERVICES),$(BUILD)/systemd/$(s).service) $(BUILD)/systemd/$(TARGET) "$(DEST)$(SYSTEMD_UNIT_DIR)/"
	@# Only a live systemd on this very machine needs (and can do) a reload.
	@if [ -z "$(DEST)" ] && [ -d /run/systemd/system ]; then \
	  echo "systemctl daemon-reload"; systemctl daemon-reload; fi
endif

# The loopback-only drop-in (Linux): the services may then exchange packets with
# this machine only. Opt-in, since the addresses are the configuration's: it is
# refused while the installed configuration names an address, a daemon's HTTP
# URL, a device's Host or URL, or a Dask Executor that is not loopback (the
# daemons could not reach one another or their devices), or turns on the alerts
# daemon's Kafka or VOEvent Transport, which reach GCN over the internet.
# Lines without a comment, then each "IP:", "Host:", "Executor:", "HTTP:" or
# "URL:" value, also in flow style ({IP: ..., Port: ...}); what remains after the
# loopback ones (and serial ports, /dev/...) is an error; then "Enabled: true"
# (yes, on) inside a "Kafka:" or "VOEvent Transport:" block or flow mapping.
define refuse_non_loopback_config
cfg="$(DEST)$(CONFIG_FILE)"; \
if [ ! -f "$$cfg" ]; then \
  echo "note: no $$cfg: the daemons' defaults are all loopback"; \
else \
  loopback='(127\.[0-9.]+|::1|\[::1\]|localhost)'; \
  others=`sed -e 's/#.*//' "$$cfg" \
    | grep -oE '(^|[{,[:space:]])(IP|Host|Executor|HTTP|URL):[[:space:]]*[^],}[:space:]]+' \
    | sed -E 's/^[{,[:space:]]+//' | tr -d "\"'" \
    | grep -vE ":[[:space:]]*($$loopback|local|null|~|/dev/[^[:space:]]+|[a-z]+://$$loopback(:[0-9]+)?(/[^[:space:]]*)?)$$"`; \
  internet=`sed -e 's/#.*//' -e 's/[[:space:]]*$$//' "$$cfg" | awk ' \
    /^[[:space:]]*(Kafka|VOEvent Transport):[[:space:]]*\{/ { \
      if ($$0 ~ /Enabled:[[:space:]]*(true|True|yes|Yes|on|On)/) { \
        sub(/^[[:space:]]*/, ""); print $$0 " (GCN, over the internet)" } next } \
    /^[[:space:]]*(Kafka|VOEvent Transport):$$/ { \
      match($$0, /^[[:space:]]*/); depth = RLENGTH; block = substr($$0, RLENGTH + 1); next } \
    block != "" { match($$0, /^[[:space:]]*/); \
      if (NF && RLENGTH <= depth) block = ""; \
      else if ($$0 ~ /^[[:space:]]*Enabled:[[:space:]]*(true|True|yes|Yes|on|On)$$/) \
        print block " Enabled: true (GCN, over the internet)" }'`; \
  others=`printf '%s\n%s\n' "$$others" "$$internet" | sed '/^$$/d'`; \
  if [ -n "$$others" ]; then \
    echo "error: $$cfg names addresses that are not loopback (or GCN, on the internet):" >&2; \
    echo "$$others" | sed 's/^/         /' >&2; \
    echo "       the loopback-only drop-in would cut the daemons off from them; allow them" >&2; \
    echo "       in a drop-in of your own instead (sudo systemctl edit <service>: IPAddressAllow=...)" >&2; \
    exit 1; \
  fi; \
fi
endef

install-loopback-only: install-check install-umask ## Linux: let the services talk to this machine only (a drop-in; loopback-only config)
	@if [ "$(INIT_SYSTEM)" != systemd ]; then \
	  echo "error: the loopback-only drop-in is for systemd (INIT_SYSTEM=$(INIT_SYSTEM))" >&2; exit 1; fi
	@$(call refuse_non_loopback_config)
	@for s in $(SERVICES); do \
	  dir="$(DEST)$(SYSTEMD_UNIT_DIR)/$$s.service.d"; mkdir -p "$$dir"; \
	  install -m 0644 systemd/$(LOOPBACK_DROP_IN) "$$dir/$(LOOPBACK_DROP_IN)"; \
	  echo "installed $$dir/$(LOOPBACK_DROP_IN)"; \
	done
	@if [ -z "$(DEST)" ] && [ -d /run/systemd/system ]; then \
	  echo "systemctl daemon-reload"; systemctl daemon-reload; fi
	@echo "restart the services for it to apply: sudo systemctl restart $(TARGET)"

uninstall-loopback-only: install-check ## Linux: remove that drop-in
	@for s in $(SERVICES); do \
	  dir="$(DEST)$(SYSTEMD_UNIT_DIR)/$$s.service.d"; \
	  rm -f "$$dir/$(LOOPBACK_DROP_IN)"; rmdir "$$dir" 2>/dev/null || true; \
	done
	@if [ -z "$(DEST)" ] && [ -d /run/systemd/system ]; then \
	  echo "systemctl daemon-reload"; systemctl daemon-reload; fi
	@echo "removed the loopback-only drop-in; restart the services for it to apply: sudo systemctl restart $(TARGET)"

# A system user and group, which the units (User=) and plists (UserName) run the
# daemons as. macOS has no useradd: a hidden user with no shell is made with dscl.
install-user: install-check
	@if [ -n "$(DEST)" ]; then \
	  echo "DESTDIR is set: not creating user $(TOROS_USER) (the target system must)"; \
	elif [ "$(UNAME)" = Darwin ]; then \
	  dseditgroup -o read $(TOROS_USER) >/dev/null 2>&1 \
	    || dseditgroup -o create -r "TOROS Manager" $(TOROS_USER) || exit 1; \
	  if id $(TOROS_USER) >/dev/null 2>&1; then echo "user $(TOROS_USER) exists"; else \
	    uid=`dscl . -list /Users UniqueID | awk '{used[$$2] = 1} END { \
	      for (id = $(DARWIN_FIRST_UID); id <= $(DARWIN_LAST_UID); id++) if (!(id in used)) { print id; exit } }'`; \
	    if [ -z "$$uid" ]; then \
	      echo "error: no free user ID from $(DARWIN_FIRST_UID) to $(DARWIN_LAST_UID) for user $(TOROS_USER)" >&2; exit 1; fi; \
	    gid=`dscl . -read /Groups/$(TOROS_USER) PrimaryGroupID | awk '{print $$2}'`; \
	    echo "creating hidden system user $(TOROS_USER) (ID $$uid)"; \
	    dscl . -create /Users/$(TOROS_USER) \
	      && dscl . -create /Users/$(TOROS_USER) UniqueID "$$uid" \
	      && dscl . -create /Users/$(TOROS_USER) PrimaryGroupID "$$gid" \
	      && dscl . -create /Users/$(TOROS_USER) UserShell /usr/bin/false \
	      && dscl . -create /Users/$(TOROS_USER) NFSHomeDirectory $(STATE_DIR) \
	      && dscl . -create /Users/$(TOROS_USER) RealName "TOROS Manager" \
	      && dscl . -create /Users/$(TOROS_USER) Password '*' \
	      && dscl . -create /Users/$(TOROS_USER) IsHidden 1 || exit 1; \
	    dseditgroup -o edit -a $(TOROS_USER) -t user $(TOROS_USER) || exit 1; \
	  fi; \
	elif id $(TOROS_USER) >/dev/null 2>&1; then \
	  echo "user $(TOROS_USER) exists"; \
	else \
	  echo "creating system user $(TOROS_USER)"; \
	  useradd --system --user-group --home-dir $(STATE_DIR) --shell /usr/sbin/nologin $(TOROS_USER); \
	fi

# OPERATORS join the groups of OPERATOR_GROUPS; every name must be a user
# that exists, or nobody is added. Not under DESTDIR (another system's users).
install-operators: install-check install-user ## add OPERATORS="alice bob" to the groups toros, systemd-journal (Linux; macOS: toros)
	@if [ -z "$(strip $(OPERATORS))" ]; then :; \
	elif [ -n "$(DEST)" ]; then \
	  echo "DESTDIR is set: not adding OPERATORS ($(strip $(OPERATORS))) to groups here (on the target system: $(ADD_OPERATOR_HOW))"; \
	else \
	  for u in $(OPERATORS); do \
	    if ! id "$$u" >/dev/null 2>&1; then \
	      echo "error: OPERATORS: no user '$$u' on this machine; nobody was added" >&2; exit 1; fi; \
	  done; \
	  for u in $(OPERATORS); do \
	    if [ "$(UNAME)" = Darwin ]; then \
	      dseditgroup -o edit -a "$$u" -t user $(TOROS_USER) || exit 1; groups=$(TOROS_USER); \
	    else \
	      groups=$(TOROS_USER); \
	      if getent group systemd-journal >/dev/null 2>&1; then groups=$$groups,systemd-journal; fi; \
	      usermod -aG $$groups "$$u" || exit 1; \
	    fi; \
	    echo "added $$u to the group(s) $$groups: effective at $$u's next login"; \
	  done; \
	fi

install-dirs: install-check install-umask install-user
	@mkdir -p "$(DEST)$(STATE_DIR)" "$(DEST)$(DATA_DIR)" "$(DEST)$(LOG_DIR)"
	@chmod 0750 "$(DEST)$(STATE_DIR)" "$(DEST)$(DATA_DIR)" "$(DEST)$(LOG_DIR)"
	@# macOS: what older installs' daemons wrote as another user (they ran as whoever loaded
	@# them) is handed to the service user, as systemd's StateDirectory= does on Linux: its
	@# directories and files, not a file with other links (an operator in group toros could
	@# have linked a system file there), nor across file systems or symbolic links.
	@if $(CAN_CHOWN); then \
	  chown $(TOROS_USER):$(TOROS_USER) "$(DEST)$(STATE_DIR)" "$(DEST)$(DATA_DIR)" "$(DEST)$(LOG_DIR)"; \
	  if [ "$(UNAME)" = Darwin ]; then \
	    find "$(DEST)$(STATE_DIR)" "$(DEST)$(LOG_DIR)" -xdev ! -user $(TOROS_USER) \
	      \( -type d -o \( -type f -links 1 \) \) -exec chown $(TOROS_USER):$(TOROS_USER) {} +; fi; \
	else echo "not root or no user $(TOROS_USER): left $(DEST)$(STATE_DIR) and $(DEST)$(LOG_DIR) unowned"; fi

# Never overwrites: the config is the operator's once installed. It may hold
# HTTP credentials, hence 0640 root:toros.
install-config: install-check install-umask install-user
	@cfg="$(DEST)$(CONFIG_FILE)"; mkdir -p "`dirname $$cfg`"; \
	if [ -e "$$cfg" ]; then \
	  echo "kept the existing $$cfg (not overwritten); the shipped default is $(SHIPPED_CONFIG)"; \
	  if [ -n "`find "$$cfg" -perm -004`" ]; then \
	    echo "warning: $$cfg is world-readable; it may hold credentials: chmod 0640 $$cfg" >&2; fi; \
	else \
	  cp $(SHIPPED_CONFIG) "$$cfg" && chmod 0640 "$$cfg"; \
	  echo "installed $$cfg (mode 0640)"; \
	  if [ "`id -u`" = 0 ] && { id $(TOROS_USER) >/dev/null 2>&1 || dseditgroup -o read $(TOROS_USER) >/dev/null 2>&1; }; then \
	    chown root:$(TOROS_USER) "$$cfg"; \
	  else echo "not root or no group $(TOROS_USER): $$cfg not chowned to root:$(TOROS_USER)"; fi; \
	fi

# ---------------------------------------------------------------------------
# A Debian package of the same install: `make deb`, then
# `sudo apt install ./dist/toros-manager_<version>_<arch>.deb`.
# It holds the locked venv made from Debian's own Python (so it depends on
# that python3.X), the units in /lib/systemd/system, the configuration as a
# conffile and the maintainer scripts of packaging/deb/.
# ---------------------------------------------------------------------------

DIST ?= dist
# The package's Maintainer field: whoever builds it, unless set.
DEB_MAINTAINER ?= $(shell git config user.name 2>/dev/null || echo "$$USER") <$(shell git config user.email 2>/dev/null || echo "$$USER@`hostname`")>
# dpkg-deb's compression, xz (the smallest) or gzip (faster to build), and its
# level, 0-9 (empty: dpkg-deb's default).
DEB_COMPRESSION ?= xz
DEB_COMPRESSION_LEVEL ?=
DEB_BUILD := $(BUILD)/deb
DEB_ROOT := $(DEB_BUILD)/root
# The Debian Python the package's venv is made from, by its versioned name: the venv then runs
# the python3.X the package depends on, whatever /usr/bin/python3 becomes (python3-minimal,
# which the package does not need, may be absent or of a newer release). Read only by `deb`.
DEB_PYTHON = /usr/bin/python$(shell /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' torosmanager/__init__.py)

deb: ## build dist/toros-manager_<version>_<arch>.deb (Debian/Ubuntu, dpkg-deb): the locked venv, units, config
	@command -v dpkg-deb >/dev/null || { echo "error: make deb needs dpkg-deb (Debian or Ubuntu)" >&2; exit 1; }
	@$(call require_lock)
	@test -x "$(DEB_PYTHON)" || { echo "error: make deb needs Debian's python3 (/usr/bin/python3 and its versioned name, here $(DEB_PYTHON))" >&2; exit 1; }
	rm -rf "$(DEB_BUILD)"
	$(MAKE) --no-print-directory install-venv install-links install-docs install-init \
	  DESTDIR="$(abspath $(DEB_ROOT))" PREFIX=/usr SYSTEMD_UNIT_DIR=/lib/systemd/system \
	  INSTALL_PYTHON=$(DEB_PYTHON) INIT_SYSTEM=systemd BUILD="$(DEB_BUILD)/units" \
	  LOCK="$(LOCK)" WHEELHOUSE="$(WHEELHOUSE)"
	install -D -m 0640 $(SHIPPED_CONFIG) "$(DEB_ROOT)$(CONFIG_FILE)"
	install -m 0644 packaging/deb/copyright "$(DEB_ROOT)/usr/share/doc/toros-manager/copyright"
	install -D -m 0644 packaging/deb/lintian-overrides "$(DEB_ROOT)/usr/share/lintian/overrides/toros-manager"
	@# Debian's links within /usr are relative.
	@for p in $(PROGRAMS); do ln -sfn "../lib/toros-manager/venv/bin/$$p" "$(DEB_ROOT)/usr/bin/$$p"; done
	printf 'toros-manager (%s) unstable; urgency=medium\n\n  * Built by make deb from the TOROS Manager checkout (%s).\n\n -- %s  %s\n' \
	  "$(VERSION)" "`git rev-parse --short HEAD 2>/dev/null || echo unknown`" "$(DEB_MAINTAINER)" "`date -R`" \
	  | gzip -9n > "$(DEB_ROOT)/usr/share/doc/toros-manager/changelog.gz"
	install -d "$(DEB_ROOT)/DEBIAN"
	install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$(DEB_ROOT)/DEBIAN/"
	echo "$(CONFIG_FILE)" > "$(DEB_ROOT)/DEBIAN/conffiles"
	@# What `dpkg --verify toros-manager` checks the installed files against (a disk's or a
	@# person's change to the venv); conffiles are not listed, dpkg keeps theirs itself.
	cd "$(DEB_ROOT)" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
	  | LC_ALL=C sort -z | xargs -0r md5sum > DEBIAN/md5sums
	@set -e; python=`sed -n 's/^version *= *\([0-9]*\.[0-9]*\).*/python\1/p' "$(DEB_ROOT)/usr/lib/toros-manager/venv/pyvenv.cfg"`; \
	arch=`dpkg --print-architecture`; size=`du -sk --exclude=DEBIAN "$(DEB_ROOT)" | cut -f1`; \
	sed -e 's|@VERSION@|$(VERSION)|' -e "s|@ARCH@|$$arch|" -e "s|@INSTALLED_SIZE@|$$size|" \
	    -e "s|@PYTHON@|$$python|" -e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' \
	    packaging/deb/control.in > "$(DEB_ROOT)/DEBIAN/control"; \
	mkdir -p "$(DIST)"; \
	deb="$(DIST)/toros-manager_$(VERSION)_$$arch.deb"; \
	dpkg-deb --root-owner-group -Z$(DEB_COMPRESSION) $(if $(DEB_COMPRESSION_LEVEL),-z$(DEB_COMPRESSION_LEVEL)) --build "$(DEB_ROOT)" "$$deb"; \
	case "$$deb" in /*) at="$$deb" ;; *) at="./$$deb" ;; esac; \
	echo "built $$deb (depends on $$python): sudo apt install $$at"

# ---------------------------------------------------------------------------
# Uninstall: config, data and logs stay unless PURGE=1.
# ---------------------------------------------------------------------------

uninstall: install-check ## stop and remove services, toros.target, venv, links (PURGE=1: also config, data, user)
ifeq ($(INIT_SYSTEM),launchd)
	@for s in $(SERVICES); do \
	  plist="$(DEST)$(LAUNCHD_DIR)/org.toros.$$s.plist"; agent="$(DEST)$(OLD_LAUNCHD_DIR)/org.toros.$$s.plist"; \
	  if [ -z "$(DEST)" ] && [ -f "$$plist" ]; then \
	    launchctl bootout system/org.toros.$$s 2>/dev/null || launchctl unload "$$plist" 2>/dev/null || true; fi; \
	  if [ -z "$(DEST)" ] && [ -f "$$agent" ]; then $(call unload_agent,$$s,$$agent); fi; \
	  rm -f "$$plist" "$$agent"; \
	done
else
	@if [ -z "$(DEST)" ] && [ -d /run/systemd/system ]; then \
	  for u in $(TARGET) $(addsuffix .service,$(SERVICES)); do \
	    systemctl stop $$u 2>/dev/null || true; \
	    systemctl disable $$u 2>/dev/null || true; \
	  done; fi
	@# The units, the target, and the loopback-only drop-in if installed (a
	@# drop-in directory is removed only when nothing else is left in it).
	@rm -f "$(DEST)$(SYSTEMD_UNIT_DIR)/$(TARGET)"
	@for s in $(SERVICES); do \
	  rm -f "$(DEST)$(SYSTEMD_UNIT_DIR)/$$s.service" "$(DEST)$(SYSTEMD_UNIT_DIR)/$$s.service.d/$(LOOPBACK_DROP_IN)"; \
	  rmdir "$(DEST)$(SYSTEMD_UNIT_DIR)/$$s.service.d" 2>/dev/null || true; \
	done
	@if [ -z "$(DEST)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
endif
	@# Only what install put there: a path that is not a venv is left alone.
	@if [ -f "$(STAGED_VENV)/pyvenv.cfg" ]; then \
	  echo "rm -rf $(STAGED_VENV)"; rm -rf "$(STAGED_VENV)"; \
	elif [ -e "$(STAGED_VENV)" ]; then \
	  echo "warning: $(STAGED_VENV) is not a venv (no pyvenv.cfg): left in place" >&2; fi
	@rmdir "`dirname $(STAGED_VENV)`" 2>/dev/null || true
	@# An older install's flat copies (see install-docs) too.
	@for f in README.md docs/*.md docs/devices/*.md; do \
	  rm -f "$(DEST)$(DOCDIR)/$$f" "$(DEST)$(DOCDIR)/`echo $$f | sed 's|^docs/||'`"; done
	@rm -f "$(DEST)$(DOCDIR)/etc/toros/toros.conf.yaml"
	@rmdir "$(DEST)$(DOCDIR)/docs/devices" "$(DEST)$(DOCDIR)/docs" "$(DEST)$(DOCDIR)/devices" \
	  "$(DEST)$(DOCDIR)/etc/toros" "$(DEST)$(DOCDIR)/etc" "$(DEST)$(DOCDIR)" 2>/dev/null || true
	@for p in $(PROGRAMS); do rm -f "$(DEST)$(BINDIR)/$$p"; done
ifeq ($(PURGE),1)
	rm -rf "$(DEST)$(CONFIG_FILE)" "$(DEST)$(CONFIG_DIR)" "$(DEST)$(STATE_DIR)" "$(DEST)$(LOG_DIR)"
	@if [ -z "$(DEST)" ]; then \
	  if [ "$(UNAME)" = Darwin ]; then \
	    if id $(TOROS_USER) >/dev/null 2>&1; then dscl . -delete /Users/$(TOROS_USER); fi; \
	    dseditgroup -o delete $(TOROS_USER) 2>/dev/null || true; \
	  else \
	    if id $(TOROS_USER) >/dev/null 2>&1; then userdel $(TOROS_USER); fi; \
	    if getent group $(TOROS_USER) >/dev/null 2>&1; then groupdel $(TOROS_USER); fi; \
	  fi; fi
else
	@echo "kept $(CONFIG_FILE), $(STATE_DIR) and $(LOG_DIR) (make uninstall PURGE=1 removes them and the user)"
endif

# ---------------------------------------------------------------------------
# Cleaning. `clean` keeps the venv (slow to remake); `distclean` removes it.
# ---------------------------------------------------------------------------

clean: ## remove build/, egg-info and caches (keeps the venv)
	rm -rf $(BUILD) build $(DIST) *.egg-info .pytest_cache .mypy_cache
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean ## clean, and remove the dev venv too
	rm -rf $(VENV)
