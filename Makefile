# Two commands: `make site` and `make test`. Everything else is setup they share.
SHELL := /bin/bash
# Ansible needs a UTF-8 locale; C.UTF-8 is on every Debian machine.
export LC_ALL := C.UTF-8
export LANG := C.UTF-8
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LINK := .collections/ansible_collections/datasteward/storage
# Test-only packages kept out of the venv's import path (requirements-isolated.txt).
ISOLATED := $(VENV)/isolated
# Debian packages the test suite drives for real (bindfs: a FUSE file system
# whose daemon the disk_usage hang test freezes; smartmontools: smartctl;
# e2fsprogs: small ext4 images for the copy tests; prometheus-node-exporter:
# the node_exporter that reads our textfiles in the metrics tests; openssh-server:
# the sshd fleet of tests/e2e/fleet; cron: crontab, which ansible.builtin.cron needs for
# the schedule role's fallback on hosts without systemd; libfuse2: fusepy's library,
# for the EIO-on-demand FUSE layer under a loop device (tests/system/ingest);
# postgresql: the real server of the history tests; chromium + chromium-driver:
# the browser that opens the HTML report (tests/e2e/history); rsync: the
# reference of benchmarks/bench_inbox.py.
TEST_DEBS := bindfs smartmontools e2fsprogs prometheus-node-exporter openssh-server cron libfuse2 postgresql chromium chromium-driver rsync
# `make ee`: the execution environment's build context (execution-environment.yml).
EE_CONTEXT ?= .build/ee/context

# The ansible-core matrix: sanity and units also run on these cores, each in
# its own venv .venvs/core<X> built from requirements-core<X>.txt with the
# first of the Pythons its "# pythons:" line names (on PATH, else pyenv's).
# A core with none of its Pythons here is not built; the summary of `make
# test` then says so on its own line (tests/checks/test_core_matrix.py).
CORES := $(patsubst requirements-core%.txt,%,$(wildcard requirements-core*.txt))
CORE_VENVS := $(foreach core,$(CORES),.venvs/core$(core)/.installed)

.PHONY: setup site test bench lint sanity units integration changelog build clean test-deps python-venv ee core-venvs format

# The release checks (galaxy-importer on the built tarball, antsibull-docs
# lint-collection-docs) in a venv of their own: galaxy-importer pins its own
# ansible-core, ansible-lint and flake8.
RELEASE_VENV := .venvs/release

setup: $(VENV)/.installed $(LINK) $(HOME)/.ansible/test/cache/.bootstrapped $(ISOLATED)/.installed core-venvs $(RELEASE_VENV)/.installed

# Installs the Debian packages named in $(1) that are missing (as root;
# otherwise it says which are missing and the next step fails).
define install_debs
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages (install them as root):$$missing"; fi; \
	fi
endef

$(VENV)/.installed: requirements.txt
	@# Debian's python3 has no venv/ensurepip without python3-venv.
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory python-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(ISOLATED)/.installed: requirements-isolated.txt $(VENV)/.installed
	rm -rf $(ISOLATED)
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps --target $(ISOLATED) -r requirements-isolated.txt
	touch $@

# The checkout is the collection root; Ansible finds it under collections_path.
$(LINK):
	mkdir -p $(dir $(LINK))
	ln -sfn ../../.. $(LINK)

# ansible-test bootstraps pip in its per-test venvs from a cached get-pip
# script it would otherwise download; ours installs pip from the registry.
$(HOME)/.ansible/test/cache/.bootstrapped: tests/utils/get_pip.py $(VENV)/.installed
	$(BIN)/python tests/utils/get_pip.py --seed-ansible-test-cache
	touch $@

core-venvs: $(CORE_VENVS)

.venvs/core%/.installed: requirements-core%.txt tests/utils/get_pip.py
	@python=""; for v in $$(sed -n 's/^# pythons: //p' $<); do \
	  for c in $$(command -v python$$v) $$(ls -d $(HOME)/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V -r); do \
	    if [ -z "$$python" ] && "$$c" -c 'import ensurepip, venv' 2>/dev/null; then python=$$c; fi; \
	  done; \
	done; \
	if [ -z "$$python" ]; then \
	  echo "ansible-core $*: none of Python $$(sed -n 's/^# pythons: //p' $<) found; its sanity and units are not run"; \
	else \
	  set -e; rm -rf .venvs/core$*; "$$python" -m venv .venvs/core$*; \
	  .venvs/core$*/bin/python -m pip install --disable-pip-version-check -q --upgrade pip; \
	  .venvs/core$*/bin/python -m pip install --disable-pip-version-check -q -r $<; \
	  .venvs/core$*/bin/python tests/utils/get_pip.py --seed-ansible-test-cache; \
	  touch $@; \
	fi

$(RELEASE_VENV)/.installed: requirements-release.txt
	rm -rf $(RELEASE_VENV)
	$(PYTHON) -m venv $(RELEASE_VENV)
	$(RELEASE_VENV)/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(RELEASE_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-release.txt
	touch $@

python-venv:
	$(call install_debs,python3-venv)

test-deps:
	$(call install_debs,$(TEST_DEBS))

site: setup
	$(BIN)/ansible-playbook site.yml

# Every check (sanity, lint, integration targets, unit tests) runs as one
# pytest session, so the last line is pytest's summary.
test: setup test-deps
	$(BIN)/python -m pytest

units: setup
	$(BIN)/python -m pytest tests/unit

sanity: setup
	$(BIN)/python -m pytest tests/checks -k sanity

integration: setup test-deps
	$(BIN)/python -m pytest tests/checks -k integration

lint: setup
	$(BIN)/python -m pytest tests/checks -k lint

bench: setup test-deps
	$(BIN)/python benchmarks/run.py

changelog: setup
	$(BIN)/antsibull-changelog release

build: setup
	$(BIN)/ansible-galaxy collection build --force --output-path .build

# The collection artifact goes where execution-environment.yml takes it from;
# ansible-builder then writes the context (Containerfile, _build/) to
# $(EE_CONTEXT). Build the image with `podman build $(EE_CONTEXT)`.
ee: setup
	rm -rf .build/ee/dist
	$(BIN)/ansible-galaxy collection build --force --output-path .build/ee/dist
	mv .build/ee/dist/datasteward-storage-*.tar.gz .build/ee/datasteward-storage.tar.gz
	$(BIN)/ansible-builder create -f execution-environment.yml --context $(EE_CONTEXT) --output-filename Containerfile

# Python lint fixes and formatting (ruff.toml); tests/checks/test_ruff.py checks both.
format: setup
	$(BIN)/ruff check --fix --extend-select I plugins tests benchmarks
	$(BIN)/ruff format plugins tests benchmarks

clean:
	rm -rf $(VENV) .venvs .collections .build .cache .pytest_cache .ruff_cache tests/output
