# Everything a developer or CI runs. `make test` installs what it needs on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all install test test-fast test-matrix lint golden mutation fuzz demo bench fleet-up fleet-down clean sshd chromium

all: test

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The fleet tests need a real OpenSSH server (and the client tools, curl and openssl it drives, and
# strace, with which the secrets canary records the argv of every process a server runs); install
# whatever is missing. sshd also needs its privilege separation directory.
FLEET_TOOLS := /usr/sbin/sshd /usr/bin/ssh-keygen /usr/bin/curl /usr/bin/openssl /usr/bin/flock /usr/bin/strace
sshd:
	@for tool in $(FLEET_TOOLS); do [ -x $$tool ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing openssh-server, openssh-client, curl, openssl, util-linux, strace (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    openssh-server openssh-client curl openssl util-linux strace >/dev/null; \
	fi
	@mkdir -p /run/sshd && chmod 0755 /run/sshd

# The report's HTML is tested in a real browser: Debian's headless Chromium, installed when missing.
chromium:
	@if ! command -v chromium >/dev/null; then \
	  echo "installing chromium (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# The fleet tests spend most of their time waiting on simulated installs and health gates, not on the
# CPU (about a quarter of 2 cores is busy), so they run on WORKERS pytest-xdist workers, spread test by
# test (each worker has its own fleet); the files whose fleet is module-scoped and cheap to share keep
# their tests on one worker (an xdist_group mark each). WORKERS=0 runs them all in one process.
WORKERS ?= 5
test: install sshd chromium
	$(PY) -m pytest -q -m "not matrix_only" -n $(WORKERS) --dist loadgroup

# The two matrices `make test` runs a slice of: every case of the fault matrix (tests/fleet/
# test_fault_matrix.py), and the documented commands on the inventory `make test` leaves out (with each
# server's version: tests/fleet/test_docs_commands.py). The cases are spread over the workers one by one.
MATRIX_WORKERS ?= 3
test-matrix: install sshd
	$(PY) -m pytest -q -m "fault_matrix or matrix_only" -n $(MATRIX_WORKERS) --dist load \
		tests/fleet/test_fault_matrix.py tests/fleet/test_docs_commands.py

test-fast: install
	$(PY) -m pytest -q -m "not fleet and not matrix_only"

# The fuzz tests (tests/fuzz) with 10,000 malformed inventories and 10,000 command lines instead of the
# 1,000 of each that `make test` runs; the same fixed seed. Nothing leaves loopback.
fuzz: install
	XSOAR_MT_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -p no:cacheprovider tests/fuzz --durations=0

lint: install
	$(VENV)/bin/ruff check xsoar_mt tests bench
	$(VENV)/bin/ruff format --check xsoar_mt tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# The golden files (tests/cli/golden/, tests/unit/golden/) are rewritten only here, on purpose;
# review `git diff` afterwards.
golden: install
	XSOAR_MT_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/unit tests/cli -k golden
	git diff --stat -- tests/cli/golden tests/unit/golden

# Mutation testing of the pure core and the secret handling ([tool.mutmut] in pyproject.toml): every
# mutant against the unit and CLI tests, then the score per module. Slow (see README); not in `test`.
mutation: install
	rm -rf mutants
	nice -n 10 $(VENV)/bin/mutmut run --max-children 2
	$(PY) bench/mutation.py

demo: install
	$(VENV)/bin/xsoar-mt inventory validate inventory.example.yaml
	$(VENV)/bin/xsoar-mt upgrade plan -i inventory.example.yaml --to 6.12

bench: install sshd
	$(PY) bench/run.py

# FLEET_ROOT: where the fleet lives (default .fleet); `make fleet-down` returns once all its processes exited.
FLEET_ROOT ?= .fleet
fleet-up: install sshd
	$(PY) -m tests.fleet up --root $(FLEET_ROOT)

fleet-down: install
	$(PY) -m tests.fleet down --root $(FLEET_ROOT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
