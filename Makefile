# pyweb.stack developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
REQ_HASH := $(shell sha256sum requirements-dev.txt | cut -c1-12)
VENV_STAMP := $(VENV)/.installed-$(REQ_HASH)
COLLECTIONS := $(CURDIR)/.cache/collections
SELF_LINK := $(COLLECTIONS)/ansible_collections/pyweb/stack
SCENARIO ?= sysctl
# Every scenario under molecule/ (the shared helpers live in molecule/_shared).
SCENARIOS := $(sort $(filter-out _shared,$(notdir $(wildcard molecule/*))))

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_HOME := $(CURDIR)/.cache/ansible-home
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0
export MOLECULE_NO_LOG := false
# One exec per task instead of copy-then-run: the sandbox and Molecule reach
# their containers through `docker exec`, where each round trip counts.
export ANSIBLE_PIPELINING := True

.PHONY: help venv collection-link docker images lint yamllint ansible-lint ruff \
        sanity unit integration check-build molecule molecule-all test build demo demo-clean loss clean fresh-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(VENV_STAMP): requirements-dev.txt
	@# uWSGI (for the uwsgi_status unit tests) builds from source: a compiler and Python's headers.
	@# Debian's python3 makes venvs only with python3-venv (ensurepip).
	bash tools/ensure-packages.sh gcc=gcc py:ensurepip=python3-venv
	bash tools/ensure-packages.sh $$(gcc -dumpmachine)-python3-config=python3-dev
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(VENV_STAMP) collection-link ## Install the pinned toolchain into .venv

# Ansible finds this collection through a link named the way it expects.
collection-link:
	@mkdir -p $(dir $(SELF_LINK))
	@test -L $(SELF_LINK) || ln -sfn ../../../.. $(SELF_LINK)

docker: ## Make sure a Docker engine runs (installs docker.io if missing)
	bash tools/ensure-docker.sh

images: docker ## Build the Debian 12/13 systemd test images (only when their recipe changed)
	bash tools/build-images.sh bookworm trixie

yamllint: venv
	yamllint --strict .

ansible-lint: venv
	ansible-lint --profile production

ruff: venv
	ruff check plugins tests molecule playbooks roles
	ruff format --check plugins tests molecule playbooks roles

lint: yamllint ansible-lint ruff ## yamllint, ansible-lint (production profile), ruff

sanity: venv ## ansible-test sanity --local, offline
	bash tools/ensure-packages.sh shellcheck=shellcheck
	bash tools/ansible-test.sh sanity

unit: venv ## pytest unit and property tests
	pytest -q tests/unit

integration: venv ## ansible-test integration targets (filters through Jinja), local
	bash tools/ansible-test.sh integration

molecule: venv images ## One Molecule scenario: make molecule SCENARIO=sysctl
	cd $(CURDIR) && molecule test -s $(SCENARIO)

molecule-all: venv images ## Every Molecule scenario
	@for s in $(SCENARIOS); do start=$$(date +%s); echo "=== molecule scenario $$s"; molecule test -s $$s || exit 1; \
		echo "=== molecule scenario $$s took $$(( $$(date +%s) - start ))s"; done

test: lint sanity unit integration check-build molecule-all fresh-check ## Everything CI runs

build: venv ## Build the collection tarball into .cache/build
	ansible-galaxy collection build --force --output-path $(CURDIR)/.cache/build

check-build: venv ## Build and check the tarball holds the content and no dev files
	bash tools/check-build.sh

# The sandbox's app server: gunicorn, uwsgi, granian or uvicorn; uWSGI's shape:
# emperor or instances; Granian's interface: wsgi or asgi (uvicorn: asgi).
SERVER ?= gunicorn
UWSGI_MODE ?= emperor
INTERFACE ?= $(if $(filter uvicorn,$(SERVER)),asgi,wsgi)

demo: venv images ## Deploy the stack into a local sandbox container (SERVER=gunicorn|uwsgi|granian|uvicorn UWSGI_MODE=emperor|instances INTERFACE=wsgi|asgi)
	ansible-playbook tools/sandbox.yml
	ansible-playbook -i inventories/sandbox playbooks/site.yml -e pyweb_demo_server=$(SERVER) -e uwsgi_mode=$(UWSGI_MODE) \
		-e pyweb_demo_interface=$(INTERFACE)
	bash tools/demo-report.sh pyweb-sandbox

demo-clean: docker ## Remove the sandbox container
	docker rm --force pyweb-sandbox >/dev/null 2>&1 || true

# LOSS_ARGS="--configs all": every server and mode (redeploys the sandbox, ~15 min); --help lists the rest.
loss: venv ## Lost GETs and POSTs per reload, restart, recycling, kill -9 in the sandbox (make demo first)
	$(BIN)/python tools/loss-matrix.py $(LOSS_ARGS)

fresh-check: docker images ## Prove the install steps on a bare Debian 12 container (no toolchain, several installers at once)
	bash tools/fresh-check.sh

clean: ## Remove caches (keeps .venv and the images)
	rm -rf .cache .pytest_cache .ruff_cache
