# Muuramen Lämpö privacy suite. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python
LOCAL := deploy/local

.PHONY: install infra up down status test test-faults lint demo bench topics clean asyncapi apidocs

install:
	@$(LOCAL)/install.sh
	@$(LOCAL)/prometheus.sh install
	@$(LOCAL)/browser.sh install

# Zipkin (traces, http://127.0.0.1:9411/zipkin/) is best effort: launched first so its JVM starts
# beside PostgreSQL and Kafka, waited for last; if it cannot start, the suite still runs. It keeps
# traces in MariaDB (127.0.0.1:3307, installed and started here; LAMPO_TRACE_RETENTION_DAYS, 100),
# and a Zipkin still running on memory is restarted on MariaDB. Without MariaDB: in memory.
infra: install
	@$(LOCAL)/mariadb.sh start || echo "[mariadb] not running; Zipkin cannot keep traces (see .run/mariadb/logs/mariadb.log)"
	@$(LOCAL)/zipkin.sh launch || echo "[zipkin] not launched; traces stay in-process"
	@$(LOCAL)/postgres.sh start
	@$(LOCAL)/kafka.sh start
	@.venv/bin/lampo topics provision
	@$(LOCAL)/zipkin.sh start || echo "[zipkin] not running; traces stay in-process (see .run/zipkin/zipkin.log)"

# `make up REPLICAS=2`: that many instances of every service, each in its service's consumer
# group (ports +100 per instance; pid and log files .run/services/<name>.<i>.*).
REPLICAS ?= 1
up: infra
	@REPLICAS=$(REPLICAS) $(LOCAL)/services.sh start
	@echo "suite is up. logs: .run/services/*.log, .run/kafka/logs/, .run/pg/*.log"

down:
	@-$(LOCAL)/services.sh stop
	@-$(LOCAL)/kafka.sh stop
	@-$(LOCAL)/postgres.sh stop
	@-$(LOCAL)/zipkin.sh stop
	@-$(LOCAL)/mariadb.sh stop

status:
	@-$(LOCAL)/postgres.sh status
	@-$(LOCAL)/kafka.sh status
	@-$(LOCAL)/mariadb.sh status
	@-$(LOCAL)/zipkin.sh status
	@-$(LOCAL)/services.sh status

# Everything CI runs: lint, then unit, integration and system tests against the real broker and database.
test: infra lint
	@$(PY) -m pytest

# Fault tests (kill -9 mid-DSAR, broker and PostgreSQL restarts under load, replay from offset 0,
# a flood of invalid records) against a Kafka and a PostgreSQL of their own (ports 19092/19093 and
# 15432, state in .run/faults), started and stopped by tests/faults/run.sh; `make test` skips them.
test-faults: install
	@tests/faults/run.sh

# Placeholder secrets: the compose file requires them, the validator only interpolates.
COMPOSE_LINT_ENV := LAMPO_PG_PASSWORD=lint LAMPO_ZIPKIN_DB_PASSWORD=lint LAMPO_MASTER_KEY=lint LAMPO_AUDIT_KEY=lint LAMPO_WEB_SESSION_KEY=lint \
	$(foreach c,STAFF DSAR PORTAL MARKETING,LAMPO_API_TOKEN_$(c)=lint) \
	$(foreach s,REGISTRY CONSENT DSAR RETENTION BILLING RECORDINGS STAFF PROVISIONER,LAMPO_KAFKA_PASSWORD_$(s)=lint) \
	LAMPO_TRUSTED_KEYS=lint $(foreach s,REGISTRY CONSENT DSAR RETENTION BILLING RECORDINGS STAFF,LAMPO_SIGNING_KEY_$(s)=lint) \
	$(foreach s,REGISTRY CONSENT DSAR RETENTION BILLING RECORDINGS STAFF,LAMPO_PG_PASSWORD_$(s)=lint)

lint: install
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy libs/src services/*/src
	@.venv/bin/lint-imports --no-cache
	@env $(COMPOSE_LINT_ENV) $$(deploy/tools/composecheck/build.sh) docker-compose.yml
	@$(PY) deploy/tools/apidocs.py
	@promtool check rules deploy/prometheus/rules.yml >/dev/null
	@promtool test rules deploy/prometheus/tests/*.yml
	@promtool check config --syntax-only deploy/prometheus/prometheus.yml >/dev/null
	@$(PY) deploy/tools/dashboard.py
	@$(PY) deploy/tools/i18n.py
	@$(PY) deploy/tools/metrics_check.py

# Regenerate docs/asyncapi/<service>.json and docs/openapi/<service>.json from each service's app
# (`make lint` checks them: current, valid AsyncAPI 3.0 and OpenAPI 3.1).
apidocs: install
	@$(PY) deploy/tools/apidocs.py --write

asyncapi: apidocs

demo: up
	@$(PY) deploy/demo/demo.py

bench: infra
	@$(PY) bench/run.py $(BENCH)

clean: down
	rm -rf .run
