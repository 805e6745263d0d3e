# Developer and CI entry points. `make test` is THE test command (README and .ci/run use it).
#
#   make venv             create .venv and install the package with its test extras
#   make engine           start/check the local Docker Engine + single-node swarm + test image
#   make server-images    real nginx and mariadb images from Debian packages (no registry)
#   make test             venv + engine + server images, then the whole pytest suite
#   make unit             unit tests only (no Docker Engine needed)
#   make lint             ruff + mypy --strict
#   make bench            benchmarks (reports, not tests); BENCH_ARGS=--quick for a short pass
#   make example-secrets  random secret files for examples/wordpress (gitignored, mode 0600)
#   make nginx-certs      root CA, site key and certificate for examples/nginx-tls (gitignored)
#   make demo             the README's main job: validate, deploy examples/nginx-tls over HTTPS,
#                         show its secrets, tear down
#   make install-systemd  boot hook (root): `composesecrets stack restore --all` after docker
#   make clean            remove caches and build output (keeps .venv; `make distclean` drops it)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
EXAMPLE_DIR := examples/wordpress
EXAMPLE_SECRETS := $(EXAMPLE_DIR)/db_password.txt $(EXAMPLE_DIR)/db_root_password.txt

# CI sets COMPOSESECRETS_REQUIRE_ENGINE=1 so that a missing engine fails the integration
# tests instead of skipping them. Pass it on only when the caller set it.
ifneq ($(origin COMPOSESECRETS_REQUIRE_ENGINE),undefined)
export COMPOSESECRETS_REQUIRE_ENGINE
endif

.PHONY: venv engine server-images test unit lint bench demo example-secrets nginx-certs clean \
	install-systemd \
	distclean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $@

engine:
	scripts/ensure-engine.sh

# Built once per recipe (here 35-90 s each, from a cold cache), then only checked (< 1 s).
server-images: engine
	scripts/build-server-images.sh all >/dev/null

test: venv engine server-images
	$(PY) -m pytest $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: venv
	$(PY) bench/run.py $(BENCH_ARGS)

# Secret files are created with O_EXCL and mode 0600; the value never leaves the process.
$(EXAMPLE_SECRETS):
	@$(PYTHON) -c 'import os, secrets, sys; \
	fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600); \
	os.write(fd, secrets.token_urlsafe(32).encode("ascii")); os.close(fd)' $@
	@echo "generated $@ (mode 0600)"

example-secrets: $(EXAMPLE_SECRETS)

# Keys are written 0600 by the generator; it keeps a still-valid set.
nginx-certs: venv
	$(PY) examples/nginx-tls/gen-certs.py

# The README's main job: validate the WordPress example, build the nginx image and the
# certificates, deploy examples/nginx-tls, show the HTTPS answer and its secrets' owners and
# modes, then tear everything down (scripts/demo.sh prints each step).
demo: venv engine example-secrets
	scripts/demo.sh

install-systemd: venv
	$(VENV)/bin/composesecrets stack restore --install-systemd

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist bench/out
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
