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

.PHONY: deploy test setup lint unit kit integration cluster clean

# The local inventory's vault is made on first use (vault_init keeps existing values).
VAULT_PASS := inventories/local/.vault-pass

deploy: setup
	if [ -f $(VAULT_PASS) ]; then pass="--vault-password-file $(VAULT_PASS)"; else pass=; fi; \
	  ansible-playbook playbooks/vault_init.yml -i inventories/local $$pass
	ansible-playbook site.yml -i inventories/local --vault-password-file $(VAULT_PASS) $(BECOME)

# Each step in turn, its time printed at the end (and the step that failed, if one did).
TEST_STEPS := lint unit kit integration cluster
test: setup
	@times=""; for step in $(TEST_STEPS); do \
	  start=$$(date +%s); \
	  if ! $(MAKE) --no-print-directory $$step; then \
	    echo "make test: $$step failed after $$(( $$(date +%s) - start )) s;$$times"; exit 1; \
	  fi; \
	  times="$$times $$step $$(( $$(date +%s) - start )) s;"; \
	done; echo "make test: every step passed;$$times"

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

lint: setup
	ruff check .
	ruff format --check .
	ansible-lint --offline

unit: setup
	pytest tests/unit

# The offline image kit on this host: builds every image it can from nothing (or reuses those
# built from identical inputs), then tests each image, the services' journey and the images role.
kit: setup
	pytest --durations=10 tests/images

# Integration tests run on this host: they bring it to a one-node swarm as `make deploy` does.
integration: setup
	pytest --durations=15 tests/integration

# Ansible reaches the cluster's nodes over SSH, as a site's hosts.
cluster: setup
	@command -v ssh >/dev/null || { echo "make: installing openssh-client"; apt-get update -qq && apt-get install -y -qq openssh-client; }
	molecule test -s cluster

clean:
	-molecule destroy -s cluster
	rm -rf $(VENV) .collections .pytest_cache .ruff_cache
