# The README's two commands, `make demo` and `make test`, each do all setup themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# a kernel for the VMs: Debian names its metapackage linux-image-amd64, Ubuntu linux-image-generic
KERNEL_PACKAGE := $(if $(shell grep -sqE '^ID(_LIKE)?=.*ubuntu' /etc/os-release && echo y),linux-image-generic,linux-image-amd64)
APT_PACKAGES := qemu-system-x86 $(KERNEL_PACKAGE) busybox-static zstd openssh-server openssh-client numactl chromium-headless-shell slurm-wlm munge
STAMP := $(VENV)/.installed
# The venv is filled by uv (installed by pip from PyPI first): with its cache warm it installs
# TensorFlow and the rest in ~15 s where pip took 55-100 s here; pip does it when uv cannot.
# uv reads no pip configuration: a local wheel folder pip is told of (PIP_FIND_LINKS) is
# passed on.
UV_LINKS := $(foreach d,$(PIP_FIND_LINKS),--find-links $(d))

.PHONY: install apt test demo bench lint mutation clean slurm-up slurm-down testbed

# The project's own modules compiled once (only what changed since), before every target that
# runs them: where PYTHONDONTWRITEBYTECODE is set (this machine's environment sets it) Python
# otherwise compiled ~110 modules from source in every process it started, 0.2 s each (a
# run, each worker, each test's CLI child; ~35x that in an emulated guest). Site packages
# come compiled from the install (uv --compile-bytecode, pip by default).
install: $(STAMP)
	@$(PY) -m compileall -q -j 0 scaler affinity

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory apt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv && \
	  $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) $(UV_LINKS) \
	    -e '.[test]' || { \
	  echo "make: uv could not install; pip installs instead"; \
	  $(PY) -m pip install --quiet --upgrade pip setuptools wheel && \
	  $(PY) -m pip install --quiet -e '.[test]'; }
	touch $(STAMP)

# System packages for the vm placement, the SSH target tests, the report's browser test
# (chromium-headless-shell) and the Slurm fleet's test cluster (slurm-wlm, munge). Needs root; skipped when every package is already installed.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then echo "make: need root to apt-get install:$$missing" >&2; exit 1; fi; \
		echo "apt-get install:" $$missing; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The whole suite on TEST_WORKERS pytest-xdist workers: tests marked `serial` (they measure,
# lock CPUs or boot VMs) run one at a time, all on one worker (tests/conftest.py); the rest
# share both. TEST_WORKERS=0 runs everything in one process. Ends with the 15 slowest tests.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

# The suite within 10 minutes on 2 cores: 3 repeats (2 per multistream probe), 1.5 s windows,
# batch 64 for large-batch throughput (1024 takes ~50 s a query in fp32 here), latency and the
# scaling sweep (1,2,4,8) in int8, multistream judged at p90 (a passing p99 probe needs 662
# queries, 20 s at batch 3); the claims table and the report's path come last.
DEMO := --repeat 3 --multistream-repeat 2 --min-duration 1.5 --batch 64 --instances 1,2 \
	--scaling-instances 1,2,4,8 --layout-precision int8 --precisions fp32,int8,bf16 --stat p90

demo: install
	$(VENV)/bin/scaler suite $(DEMO) --out results

bench: install
	$(PY) -m scaler.bench --out results/bench

# Mutation testing of the modules in tests/mutation/targets.toml; not part of `make test`.
# Writes results/mutation/report.md; fails when a module kills fewer than 85% of its mutants.
mutation: $(VENV)/.mutation-installed
	$(PY) -m tests.mutation.run

$(VENV)/.mutation-installed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,mutation]'
	touch $@

# A one-node Slurm cluster on this machine (munged, slurmctld, slurmd; root), as the tests start
# it: all its files in SLURM_DIR, ports of its own. slurm-up prints the SLURM_CONF and --fleet to
# use; slurm-down stops it and removes SLURM_DIR.
SLURM_DIR ?= /tmp/scaler-slurm-cluster

slurm-up: install
	$(PY) -m tests.scaler.fleets.cluster up $(SLURM_DIR)

slurm-down:
	$(PYTHON) -m tests.scaler.fleets.cluster down $(SLURM_DIR)

lint: install
	$(VENV)/bin/ruff check scaler affinity tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis

# The two-socket testbed (issue 27): a QEMU guest with 2 sockets, 2 NUMA nodes, 2 cores per
# socket, 2 threads per core runs topology, plan and the null and tflite scaling sweeps;
# KVM where available, TCG (much slower) otherwise. Writes results/testbed.
testbed: install
	$(PY) -m scaler.testbed --out results/testbed
