# The two commands of the README. Everything else here is what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench fuzz clean

# (Re)install when the project's metadata changes; `pip install -e` keeps code edits live.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# The real FHIR server of the integration tests and the benchmark (Medplum's router, tests/fhir_server).
FHIR_SERVER := tests/fhir_server
NODE_STAMP  := $(FHIR_SERVER)/node_modules/.installed
$(NODE_STAMP): $(FHIR_SERVER)/package.json $(FHIR_SERVER)/package-lock.json
	cd $(FHIR_SERVER) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

run: $(STAMP)
	$(BIN)/cds-service serve

# The audit tests need PostgreSQL: the script uses the machine's, or starts (installing it if need be)
# and afterwards stops a throwaway one; without either the PostgreSQL tests skip, saying why.
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	PYTHON=$(BIN)/python bash tests/services/with_postgres.sh $(BIN)/pytest

# Benchmarks print ratios; they are never part of `make test`.
bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/bench_fhir.py
	$(BIN)/python bench/bench_hooks.py
	$(BIN)/python bench/bench_audit.py
	$(BIN)/python bench/bench_screen.py

# The whole hostile catalogue on every path of the real requests (~35,000 calls, a few minutes);
# `make test` runs a seeded sample of it. SEED and COUNT choose another or a smaller run.
fuzz: $(STAMP)
	$(BIN)/python bench/fuzz_mutations.py $(if $(SEED),--seed $(SEED)) $(if $(COUNT),--count $(COUNT))

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(FHIR_SERVER)/node_modules
