# Anime Hot on Dagster. `make demo` runs the whole system here; `make test` runs the suite.
# `make test-fast` leaves out the slow tests (end to end, demo, grayscale, chaos, benchmarks);
# `make lint` runs ruff. `make test` and `make demo` first install the Debian packages they need
# (scripts/install_system_packages.sh: as root; otherwise it prints the apt-get line and stops).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPOSE ?= docker compose

.PHONY: install test test-fast lint system-packages demo clean \
	docker-build docker-up docker-down docker-logs docker-ps docker-base docker-test \
	dev-deps dev-analyzer dev-crawler grayscale-start grayscale-verify grayscale-stop \
	health-check check-redis check-mysql backup restore \
	bench bench-ingest bench-queue bench-crawl bench-api bench-accuracy bench-chaos

$(STAMP): setup.py
	@echo "installing the project into $(VENV) (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Three workers (PYTEST_WORKERS=0 for one process), each with its own MySQL databases and Redis
# database (animehot_dagster_tests/conftest.py); a module's tests stay on one worker (conftest.py: loadgroup),
# so a module-scoped fixture such as the demo run is set up once. Three on two cores: the slow tests
# mostly wait on real clocks (the demo, the daemon, the containers), so a third worker keeps the
# cores busy with the rest meanwhile.
PYTEST_WORKERS ?= 3
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

system-packages:
	scripts/install_system_packages.sh test

test: system-packages $(STAMP)
	scripts/ensure_services.sh
	$(PYTEST) animehot_dagster_tests

test-fast: system-packages $(STAMP)
	scripts/ensure_services.sh
	$(PYTEST) -m "not slow" animehot_dagster_tests

lint: $(STAMP)
	$(BIN)/ruff check .

# The whole system on embedded defaults (SQLite, a private redis-server) unless DATABASE_URL /
# MYSQL_HOST, REDIS_URL or DAGSTER_MYSQL_URL name servers. Ends after DEMO_DURATION or Ctrl-C.
# redis-server only when no Redis is configured (the demo then starts its own).
demo: $(STAMP)
	@[ -n "$$REDIS_URL$$REDIS_HOST" ] || scripts/install_system_packages.sh demo
	$(BIN)/animehot demo

# -- containers (manual §2.1) -------------------------------------------------------------------
# BASE_IMAGE=animehot-base:bookworm (make docker-base) builds FROM the local Debian base where no
# registry can be reached; empty: the official python image.
BASE_IMAGE ?=
docker-build:
	$(COMPOSE) build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE))

docker-up:
	$(COMPOSE) up -d

docker-down:
	$(COMPOSE) down

docker-logs:
	$(COMPOSE) logs -f

docker-ps:
	$(COMPOSE) ps

# The local Debian base image (debootstrap + docker import; once per machine).
docker-base:
	scripts/install_system_packages.sh docker
	deploy/test/ensure_dockerd.sh
	scripts/build_base_image.sh

# The images built and the dev and prod stacks up for real, checked through the containers
# (animehot_dagster_tests/deploy/test_docker_stack.py; it starts dockerd when none runs).
docker-test: $(STAMP)
	scripts/install_system_packages.sh docker
	$(BIN)/pytest -q animehot_dagster_tests/deploy/test_docker_stack.py

# -- local development without containers --------------------------------------------------------
# MySQL and Redis: the compose services when Docker is here, else the local servers.
dev-deps:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		$(COMPOSE) up -d mysql redis; else scripts/ensure_services.sh; fi

# The analyzer of the original is Dagster (code server, daemon, webserver) plus the API here.
dev-analyzer: $(STAMP)
	$(BIN)/animehot up --components analyzer

dev-crawler: $(STAMP)
	$(BIN)/animehot crawler

# -- grayscale (manual §8.1): the two grayscale IPs on the local system, then check the flow ------
grayscale-start: $(STAMP)
	scripts/grayscale.sh start

grayscale-verify: $(STAMP)
	scripts/grayscale.sh verify

grayscale-stop:
	scripts/grayscale.sh stop

# -- operations scripts (manual §5.3, §8, §9) ---------------------------------------------------
health-check:
	scripts/health_check.sh

check-redis:
	scripts/check_redis.sh

check-mysql:
	scripts/check_mysql.sh

backup:
	scripts/backup.sh

restore:
	scripts/restore.sh $(BACKUP)

# -- benchmarks --------------------------------------------------------------------------------
# `make bench` ends with the chaos run (bench/chaos.py: CHAOS_MINUTES of random faults on the local
# system, then the invariants and the recovery times; docs/operations.md, "Chaos run").
CHAOS_MINUTES ?= 20
CHAOS_SEED ?= 1

bench: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python -m bench.suite
	$(BIN)/python -m bench.chaos --minutes $(CHAOS_MINUTES) --seed $(CHAOS_SEED)

bench-ingest: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python -m bench.ingest

bench-queue: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python -m bench.reliable_queue

bench-crawl: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python -m bench.crawl

bench-api: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python -m bench.api

bench-accuracy: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python -m bench.accuracy --method both

bench-chaos: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python -m bench.chaos --minutes $(CHAOS_MINUTES) --seed $(CHAOS_SEED)

clean:
	rm -rf $(VENV) var *.egg-info
