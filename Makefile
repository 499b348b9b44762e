# make deploy: ShopStream on this host as a single-node swarm.
# make test:   every test (lint, unit, integration on this host, the multi-node Molecule cluster).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Not root: ask for the sudo password once.
BECOME := $(if $(filter 0,$(shell id -u)),,--become --ask-become-pass)
COLLECTION_LINK := .collections/ansible_collections/shopstream/swarm

.PHONY: deploy test setup lint unit kit integration integration-engine integration-platform cluster clean

# The local inventory's vault is made on first use (vault_init keeps existing values).
VAULT_PASS := inventories/local/.vault-pass

deploy: setup
	if [ -f $(VAULT_PASS) ]; then pass="--vault-password-file $(VAULT_PASS)"; else pass=; fi; \
	  ansible-playbook playbooks/vault_init.yml -i inventories/local $$pass
	ansible-playbook site.yml -i inventories/local --vault-password-file $(VAULT_PASS) $(BECOME)

# The steps, timed (tests/harness/test-stages.sh). The tests that stop or restart this host's
# engine come first (lint and unit beside them): the cluster's nodes are containers on it. Then
# the cluster runs while the kit's and the other integration tests do.
TEST_STAGES := "integration-engine & lint unit" "cluster & kit integration-platform"
test: setup
	@tests/harness/test-stages.sh $(TEST_STAGES)

setup: $(VENV)/.installed $(COLLECTION_LINK)

$(VENV)/.installed: requirements.txt
	@python3 -c 'import ensurepip' 2>/dev/null || { echo "make: installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

# ansible-test sanity as a published collection runs it, offline (tests/harness/sanity.sh);
# tests/sanity/ignore-*.txt gives each exception's reason.
lint: setup
	ruff check .
	ruff format --check .
	ansible-lint --offline
	@command -v shellcheck >/dev/null || { echo "make: installing shellcheck"; apt-get update -qq && apt-get install -y -qq shellcheck; }
	tests/harness/sanity.sh

unit: setup
	pytest tests/unit

# The offline image kit on this host: builds every image it can from nothing (or reuses those
# built from identical inputs), then tests each image, the services' journey and the images role.
kit: setup
	pytest --durations=10 tests/images

# Integration tests run on this host: they bring it to a one-node swarm as `make deploy` does.
# Those marked `engine` stop or restart its Docker engine.
integration: integration-engine integration-platform
integration-engine: setup
	pytest --durations=15 -m engine tests/integration
# libfaketime gives one inventory host a clock of its own, for preflight's clock check.
integration-platform: setup
	@ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || { echo "make: installing libfaketime"; apt-get update -qq && apt-get install -y -qq libfaketime; }
	pytest --durations=15 -m "not engine" tests/integration

# Ansible reaches the cluster's nodes over SSH, as a site's hosts.
cluster: setup
	@command -v ssh >/dev/null || { echo "make: installing openssh-client"; apt-get update -qq && apt-get install -y -qq openssh-client; }
	molecule test -s cluster

clean:
	-molecule destroy -s cluster
	rm -rf $(VENV) .collections .pytest_cache .ruff_cache
