# bulkmail.infra: the two commands a user needs are `make lab` and `make test`.
# Everything else here is what those two stand on.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PIP_CERT ?= /etc/ssl/certs/ca-certificates.crt

LAB     := lab
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# Every lab service but the controller; IMAGES: what `make images` builds (lab-hosts
# leaves out the controller's image: nothing runs it then).
HOSTS   := smtp1 smtp2 dns1 dns2 db1 web1 client providers relay1 relay2 relay3 s3
IMAGES  := smtp1 providers s3 controller
# The relays mount it: made here, by this user, before Docker would make it as root.
LAB_SECRETS := inventories/lab/.secrets
COLLECTION_LINK := collections/ansible_collections/bulkmail/infra

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# --- controller side ---------------------------------------------------------

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	@command -v python3 >/dev/null || { echo "missing: python3 (apt-get install python3 python3-venv)"; exit 1; }
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "missing: Python 3.11 or newer"; exit 1; }
	@python3 -m venv --help >/dev/null 2>&1 || { echo "missing: python3-venv (apt-get install python3-venv)"; exit 1; }
	python3 -m venv $(VENV)
	@# uv installs the tooling in a fifth of pip's time (parallel downloads and unpacking):
	@# 22 s against 40 to 110 s for the same requirements, on a fresh machine.
	$(BIN)/pip install -q uv
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-dev.txt
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Python tooling in .venv (Ansible, Molecule, linters)

.PHONY: collection-link
collection-link: ## Make this checkout resolvable as bulkmail.infra (the link is committed; this restores it)
	@test -L $(COLLECTION_LINK) || { mkdir -p $(dir $(COLLECTION_LINK)) && ln -s ../../.. $(COLLECTION_LINK); }

# --- the lab -----------------------------------------------------------------

.PHONY: docker
docker: ## Install and start Docker and Compose where they are missing
	@$(LAB)/bin/ensure-docker

.PHONY: images
images: docker ## Build the lab images (base image from debootstrap when no registry)
	@$(LAB)/bin/check-networks
	@$(LAB)/bin/ensure-base-image
	@find $(LAB)/images/extra-ca -name '*.crt' -delete
	@cp /usr/local/share/ca-certificates/*.crt $(LAB)/images/extra-ca/ 2>/dev/null || true
	cd $(LAB) && $(COMPOSE) build -q $(IMAGES)

# The relays' kept certificates, made once into $(LAB_SECRETS) by the providers' image (so
# the build host needs no Python library), as this user: a lab CA and relay1's certificate
# signed by it (lab/playbooks/trust-lab-ca.yml makes the smtp hosts trust it), relay2's
# self-signed pair and its public key's digest, which the lab inventory pins.
.PHONY: lab-certs
lab-certs: ## Make the lab relays' certificates where missing (needs the providers image)
	@mkdir -p -m 700 $(LAB_SECRETS)
	@docker run --rm --network none --user "$$(id -u):$$(id -g)" \
	  -v "$(CURDIR)/$(LAB_SECRETS):/secrets" \
	  bulkmail-lab-providers:latest \
	  python3 -m bulkmail_providers lab-certs --dir /secrets --ca-signed relay1 --pinned relay2

.PHONY: lab-hosts
lab-hosts: IMAGES := smtp1 providers s3
lab-hosts: images ## Start the lab hosts without converging them (Molecule's create)
	@$(MAKE) --no-print-directory lab-certs
	cd $(LAB) && $(COMPOSE) up -d $(HOSTS)

.PHONY: lab
lab: images ## Bring up the whole lab, converged by site.yml, showing its progress and summary
	@$(MAKE) --no-print-directory lab-certs
	@since=$$(date +%s); \
	  (cd $(LAB) && $(COMPOSE) up -d); \
	  docker logs --follow --since "$$since" bulkmail-controller 2>&1 || true; \
	  rc=$$(docker wait bulkmail-controller); \
	  if [ "$$rc" != 0 ]; then \
	    echo "make lab: the controller's converge failed (exit $$rc); full log: docker logs bulkmail-controller"; exit 1; fi

.PHONY: converge
converge: venv collection-link ## Run site.yml against the running lab from this machine
	ansible-playbook site.yml

.PHONY: received
received: ## What the emulated providers received, one JSON object per message
	@docker exec bulkmail-providers python3 -m bulkmail_providers received

.PHONY: check-dns
check-dns: venv ## Check the lab's published SPF, DKIM, DMARC, MX, PTR, MTA-STS, TLS-RPT
	bulkmail check-dns --inventory inventories/lab --key-store inventories/lab/.secrets/dkim \
	  --nameserver 198.51.100.53

.PHONY: down
down: ## Remove the lab, volumes included
	@if docker info >/dev/null 2>&1; then cd $(LAB) && $(COMPOSE) --profile bench down -v --remove-orphans; fi

# --- benchmarks (not tests: figures, not pass/fail; docs/benchmarks.md) ------

.PHONY: bench-throughput
bench-throughput: lab ## Msg/s through the smtp tier with DKIM, with its baselines (BENCH_MESSAGES=5000)
	$(LAB)/bench/throughput

.PHONY: bench-submission
bench-submission: lab ## Msg/s submitted on 587 with the sender guard, against the same path without it
	$(LAB)/bench/submission

.PHONY: bench-isolation
bench-isolation: lab ## Transactional latency beside a saturating bulk campaign, lanes vs untuned
	$(LAB)/bench/isolation

.PHONY: bench-policy
bench-policy: lab ## Policy checks/s and p99 at 1,000 connections (1M rows); port 25 with vs without it
	$(LAB)/bench/policy/run

.PHONY: bench-ingest
bench-ingest: lab ## Ingester lines/s into PostgreSQL vs the MTA's peak log rate; its lag under load
	$(LAB)/bench/ingest/run

# --- tests -------------------------------------------------------------------

.PHONY: lint
lint: venv collection-link ## ruff, yamllint, ansible-lint (production profile), role READMEs against argument_specs
	ruff check .
	ruff format --check .
	yamllint -s .
	ansible-lint --profile production
	python3 tests/lint/check_role_readmes.py
	@$(MAKE) --no-print-directory collection-check

# What a user of the built collection gets: build, install into a temp dir, and run the
# playbook by its collection name from outside the checkout, with none of its config.
SHIP_IGNORED := ^(Makefile|ansible\.cfg|requirements-dev\.txt|lab|molecule|\.ci|build|\.venv|collections|tests/output|inventories/lab|inventories/[^/]+/\.secrets)(/|$$)

.PHONY: collection-check
collection-check: venv ## Build the collection, install it in a temp dir, syntax-check bulkmail.infra.site from there
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/bulkmail-collection.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	  ansible-galaxy collection build -f --output-path "$$tmp" >/dev/null; \
	  tarball=$$(ls "$$tmp"/bulkmail-infra-*.tar.gz); \
	  if tar -tzf "$$tarball" | grep -E '$(SHIP_IGNORED)'; then \
	    echo "collection-check: the files above must stay out of the built collection (galaxy.yml build_ignore)"; exit 1; fi; \
	  cd "$$tmp" && export -n ANSIBLE_CONFIG && export ANSIBLE_COLLECTIONS_PATH="$$tmp/installed"; \
	  ansible-galaxy collection install -p "$$tmp/installed" "$$tarball" >/dev/null; \
	  ansible-playbook bulkmail.infra.site --syntax-check \
	    -i "$$tmp/installed/ansible_collections/bulkmail/infra/inventories/example"; \
	  echo "collection-check: $$(basename "$$tarball"), $$(tar -tzf "$$tarball" | wc -l) entries, bulkmail.infra.site parses from the installed copy"

.PHONY: sanity
sanity: venv ## ansible-test sanity, as Galaxy and collection maintainers run it
	tests/sanity/run

.PHONY: unit
unit: venv collection-link ## Unit tests: pure logic, no Docker
	@tests/bin/ensure-unit-tools
	pytest -q tests/unit lab/providers/tests
	pytest -q lab/bench/tests  # its own conftest: a second run, or the two collide

.PHONY: molecule
molecule: venv collection-link docker ## The whole stack: create = the lab's hosts, converge = site.yml, idempotence, verify
	molecule test 2>&1 | $(LAB)/bin/phase-times molecule

.PHONY: test
# The lab's images (network and disk, mostly) build beside the static checks (CPU, mostly);
# lint, unit and sanity run beside each other too, each into its own log, printed whole when
# it ends. Molecule's create then finds the images built. Each phase prints its duration.
STATIC_CHECKS := lint unit sanity
test: ## Every test; non-zero on any failure; prints each phase's duration
	@start=$$(date +%s); mkdir -p build; rm -f build/lab-images.rc build/phase-*.rc; \
	  ( began=$$(date +%s); rc=0; \
	    $(MAKE) --no-print-directory images IMAGES="smtp1 providers s3" >build/lab-images.log 2>&1 || rc=$$?; \
	    echo "$$rc $$(( $$(date +%s) - began ))" >build/lab-images.rc ) & \
	  images=$$!; \
	  images_done() { \
	    wait $$images || true; read -r rc took <build/lab-images.rc; cat build/lab-images.log; \
	    echo "phase images (beside the static checks): $$took s"; \
	    [ "$$rc" = 0 ] || { echo "make test: the lab images did not build (build/lab-images.log)"; exit 1; }; }; \
	  began=$$(date +%s); \
	  $(MAKE) --no-print-directory venv \
	    || { echo "phase venv: failed after $$(( $$(date +%s) - began )) s"; images_done || true; exit 1; }; \
	  echo "phase venv: $$(( $$(date +%s) - began )) s"; \
	  pids=""; \
	  for phase in $(STATIC_CHECKS); do \
	    ( began=$$(date +%s); rc=0; \
	      $(MAKE) --no-print-directory $$phase >build/phase-$$phase.log 2>&1 || rc=$$?; \
	      echo "$$rc $$(( $$(date +%s) - began ))" >build/phase-$$phase.rc ) & \
	    pids="$$pids $$!"; \
	  done; \
	  echo "phase static checks: $(STATIC_CHECKS) beside each other (logs in build/phase-*.log)"; \
	  failed=""; \
	  for phase in $(STATIC_CHECKS); do \
	    while [ ! -e build/phase-$$phase.rc ]; do sleep 1; done; \
	    read -r rc took <build/phase-$$phase.rc; cat build/phase-$$phase.log; \
	    if [ "$$rc" = 0 ]; then echo "phase $$phase: $$took s"; \
	    else echo "phase $$phase: failed after $$took s"; failed="$$failed $$phase"; fi; \
	  done; \
	  wait $$pids || true; \
	  if [ -n "$$failed" ]; then images_done || true; echo "make test: failed:$$failed"; exit 1; fi; \
	  echo "phase static checks: $$(( $$(date +%s) - began )) s with the venv"; \
	  images_done; \
	  began=$$(date +%s); \
	  $(MAKE) --no-print-directory molecule \
	    || { echo "phase molecule: failed after $$(( $$(date +%s) - began )) s"; exit 1; }; \
	  echo "phase molecule: $$(( $$(date +%s) - began )) s"; \
	  echo "make test: passed in $$(( $$(date +%s) - start )) s"
