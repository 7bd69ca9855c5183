# Muuramen Lämpö privacy suite. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python
LOCAL := deploy/local

.PHONY: install infra up down status test lint demo bench topics clean

install:
	@$(LOCAL)/install.sh

infra: install
	@$(LOCAL)/postgres.sh start
	@$(LOCAL)/kafka.sh start
	@.venv/bin/lampo topics provision

up: infra
	@$(LOCAL)/services.sh start
	@echo "suite is up. logs: .run/services/*.log, .run/kafka/logs/, .run/pg/*.log"

down:
	@-$(LOCAL)/services.sh stop
	@-$(LOCAL)/kafka.sh stop
	@-$(LOCAL)/postgres.sh stop

status:
	@-$(LOCAL)/postgres.sh status
	@-$(LOCAL)/kafka.sh status
	@-$(LOCAL)/services.sh status

# Everything CI runs: lint, then unit, integration and system tests against the real broker and database.
test: infra lint
	@$(PY) -m pytest

lint: install
	@.venv/bin/ruff check .
	@.venv/bin/mypy libs/src services/*/src
	@LAMPO_PG_PASSWORD=lint LAMPO_MASTER_KEY=lint $$(deploy/tools/composecheck/build.sh) docker-compose.yml

demo: up
	@$(PY) deploy/demo/demo.py

bench: infra
	@$(PY) bench/run.py

clean: down
	rm -rf .run
