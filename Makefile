# The README's two commands, `make demo` and `make test`, each do all setup themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# a kernel for the VMs: Debian names its metapackage linux-image-amd64, Ubuntu linux-image-generic
KERNEL_PACKAGE := $(if $(shell grep -sqE '^ID(_LIKE)?=.*ubuntu' /etc/os-release && echo y),linux-image-generic,linux-image-amd64)
APT_PACKAGES := qemu-system-x86 $(KERNEL_PACKAGE) busybox-static zstd openssh-server openssh-client numactl chromium-headless-shell
STAMP := $(VENV)/.installed

.PHONY: install apt test demo bench lint mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory apt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# System packages for the vm placement, the SSH target tests and the report's browser test
# (chromium-headless-shell). Needs root; skipped when every package is already installed.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then echo "make: need root to apt-get install:$$missing" >&2; exit 1; fi; \
		echo "apt-get install:" $$missing; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/scaler suite --min-duration 5 --out results

bench: install
	$(PY) -m scaler.bench --out results/bench

# Mutation testing of the measurement core (tests/mutation/targets.toml); not part of `make test`.
# Writes results/mutation/report.md; fails when a module kills fewer than 85% of its mutants.
mutation: $(VENV)/.mutation-installed
	$(PY) -m tests.mutation.run

$(VENV)/.mutation-installed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,mutation]'
	touch $@

lint: install
	$(VENV)/bin/ruff check scaler affinity tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
