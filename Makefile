# mlops_platform — every target the README names. uv is installed on first use if missing.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")

export DAGSTER_HOME ?= $(CURDIR)/.data/dagster_home
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export RUNTIME__DLTHUB_TELEMETRY := false

.PHONY: backtest run year rain test install dev mlflow serve lint bench bench-ingest bench-load bench-train \
	bench-serve bench-drift bench-gate bench-gate-noise bench-runs clean sbom prod-up prod-down prod-status bench-scale nginx

## run: install everything; ingest 45 days of 2013, train a champion, then two weeks through the
## loop (drift -> retrain -> gate -> promote) on embedded defaults
run: install
	$(UV) run simulator quickstart

## year: replay the whole of 2013 day by day through the loop from a clean state (wipes .data);
## prints the month-by-month table and saves it with a PNG under .data/reports/<spec>/; the
## policy backtest of the same year runs beside it at low priority on the core the replay leaves
## idle (--backtest; log .data/reports/<spec>/backtest.log), its table printed and saved after
year: install
	$(UV) run simulator replay --fresh --backtest --report-name year-2013

## rain: the rainfall domain's replay from a clean state (wipes .data): warm-up to 1978, the
## first champion, then month by month through the loop to 1988 across the data's concept change
## (late 1981); prints live vs static by year and saves it with a PNG under .data/reports/rain/
rain: install
	MLOPS_MODEL_SPECS=rain $(UV) run simulator replay --spec rain --fresh --report-name rain-1978-1988

## backtest: which retraining policy pays: six policies (static, every 14 days with and without
## the gate, drift, performance, the platform's default) walked offline over flights 2013 and
## rainfall 1978-1990 with the platform's own functions; tables and PNGs in .data/reports/<spec>/
backtest: install
	$(UV) run simulator backtest --spec flight_delay
	$(UV) run simulator backtest --spec rain

## test: install everything, then run the whole test suite, one test file per worker process
## (a worker per core, at most 4; see the ordering in mlops_platform_tests/conftest.py)
test: install nginx
	PATH="$$PATH:/usr/sbin" $(UV) run pytest --numprocesses auto --maxprocesses 4 --dist loadfile

# Debian's nginx: the production stack's load balancer and read-only registry proxy, and wrk,
# the load of its rolling-promotion test (both run in `make test`); installed with apt-get
# when missing.
nginx:
	@(command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]) && command -v wrk >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null)

install: .venv/.synced $(DAGSTER_HOME)/dagster.yaml

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## dev: the Dagster UI and daemon at http://127.0.0.1:3000
dev: install
	$(UV) run dagster dev -w workspace.yaml

## mlflow: the MLflow UI on the local tracking store at http://127.0.0.1:5000
mlflow: install
	$(UV) run mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.data/mlflow/mlflow.db --port 5000

## sbom: CycloneDX SBOM of the locked runtime dependencies (uv.lock without dev tools), offline,
## written to $(SBOM) (never committed; every model version also logs the SBOM it was trained with)
SBOM ?= .data/sbom/runtime.cdx.json
sbom: install
	@mkdir -p $(dir $(SBOM))
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --format requirements-txt \
		--quiet --output-file $(dir $(SBOM))runtime-requirements.txt
	$(UV) run cyclonedx-py requirements --pyproject pyproject.toml --output-reproducible \
		--no-validate --output-format JSON --output-file $(SBOM) \
		$(dir $(SBOM))runtime-requirements.txt
	@echo "SBOM: $(SBOM) ($$(grep -c '"purl"' $(SBOM)) packages)"

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

## bench: every benchmark under bench/
bench: bench-ingest bench-load bench-train bench-serve bench-drift bench-gate

bench-ingest: install
	$(UV) run python bench/ingest_bench.py

bench-train: install
	$(UV) run python bench/train_bench.py

## bench-gate: the gate's single-row latency idle vs with every core busy (ratio near 1x)
bench-gate: install
	$(UV) run python bench/gate_latency_bench.py

## bench-gate-noise: the gate's latency rule beside cache-thrashing neighbours, against main's
bench-gate-noise: install
	$(UV) run python bench/gate_latency_noise.py --baseline main --repeats 30

## bench-drift: the daily drift check (target < 3 s) vs bare Evidently on the same frames
bench-drift: install
	$(UV) run python bench/drift_bench.py

bench-serve: install
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk)
	$(UV) run python bench/serving_bench.py

## serve: the model API on the local registry at http://127.0.0.1:8080 (docs at /docs)
serve: install
	$(UV) run mlops serve --port 8080

bench-load: install
	$(UV) run python bench/load_bench.py

## bench-runs: what a replay run costs beyond its work: execute_in_process (floor), the replay's
## path (the workspace's origin, executed in process), the run launcher's worker per run (peer)
bench-runs: install
	$(UV) run python bench/run_origin_bench.py

## clean: remove generated state (source db, warehouse, dlt state, Dagster home)
clean:
	rm -rf .data

## prod-up: the production stack on this machine (Procfile run by honcho): Dagster on PostgreSQL
## (webserver, daemon, gRPC code location), Celery workers over RabbitMQ, MLflow server, two
## serving replicas behind nginx, fed by the simulator (its source database and weather feed);
## prints every UI and endpoint. Needs PostgreSQL and RabbitMQ.
prod-up: install nginx
	PATH="$$PATH:/usr/sbin" $(UV) run python -m simulator.stack up

## prod-down: stop the production stack
prod-down:
	$(UV) run python -m mlops_platform.deploy.stack down

prod-status:
	$(UV) run python -m mlops_platform.deploy.stack status

## bench-scale: the flights year at 1x, 4x, 16x on the production profile (rows/s, peak memory,
## growth exponent) and a 28-partition backfill on one Celery worker vs two (one stack, back to
## back). Parts: BENCH_SCALE_ARGS="--scales 1,16 --skip-backfill" or "--only-backfill".
BENCH_SCALE_ARGS ?=
bench-scale: install nginx
	PATH="$$PATH:/usr/sbin" $(UV) run python bench/scale_bench.py $(BENCH_SCALE_ARGS)
