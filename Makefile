# The two commands of the README. Everything else here is what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean elm

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

# playwright-core for the preview's browser tests (tests/browser); they use Debian's chromium, which the
# tests install themselves when /usr/bin/chromium is missing.
BROWSER_TESTS := tests/browser
BROWSER_STAMP := $(BROWSER_TESTS)/node_modules/.installed
$(BROWSER_STAMP): $(BROWSER_TESTS)/package.json $(BROWSER_TESTS)/package-lock.json
	cd $(BROWSER_TESTS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(BROWSER_STAMP)

# The CQL tools (cql/): the reference CQL-to-ELM translator and the cql-execution engine, from npm, pinned by
# cql/package-lock.json (written without download addresses: cql/.npmrc).
CQL_TOOLS := cql
CQL_STAMP := $(CQL_TOOLS)/node_modules/.installed
$(CQL_STAMP): $(CQL_TOOLS)/package.json $(CQL_TOOLS)/package-lock.json
	cd $(CQL_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(CQL_STAMP)

# After editing plan_definitions/logic/DexFreeRules.cql: compile it (the translator fails on any error) and
# embed the CQL in its Library; tests/knowledge/test_cql.py checks both are current.
LOGIC := plan_definitions/logic
elm: $(STAMP) $(CQL_STAMP)
	node $(CQL_TOOLS)/translate.mjs $(LOGIC)/DexFreeRules.cql --out $(LOGIC)/DexFreeRules.elm
	$(BIN)/python -c "from pathlib import Path; from cds_service.knowledge.elm import embed_sources; \
	embed_sources(Path('plan_definitions'))"

run: $(STAMP)
	$(BIN)/cds-service serve

# The audit tests need PostgreSQL: the script uses the machine's, or starts (installing it if need be)
# and afterwards stops a throwaway one; without either the PostgreSQL tests skip, saying why.
test: $(STAMP) $(NODE_STAMP) $(BROWSER_STAMP) $(CQL_STAMP)
	$(BIN)/ruff check .
	PYTHON=$(BIN)/python bash tests/services/with_postgres.sh $(BIN)/pytest

# Benchmarks print ratios; they are never part of `make test`.
bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/bench_fhir.py
	$(BIN)/python bench/bench_hooks.py
	$(BIN)/python bench/bench_audit.py
	$(BIN)/python bench/bench_screen.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(FHIR_SERVER)/node_modules $(BROWSER_TESTS)/node_modules $(CQL_TOOLS)/node_modules tests/artifacts
