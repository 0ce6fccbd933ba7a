# The two commands of the README. Everything else here is what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench mutation fuzz image-test lock elm clean

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
# and afterwards stops a throwaway one. A test whose real part (PostgreSQL, Redis, the FHIR server, the
# browser) is missing fails when CI is set (.ci/run) and skips, saying why, elsewhere.
test: $(STAMP) $(NODE_STAMP) $(BROWSER_STAMP) $(CQL_STAMP)
	$(BIN)/ruff check .
	bash tests/deploy/install_tools.sh
	CDS_IMAGE_TEST=1 PYTHON=$(BIN)/python bash tests/services/with_postgres.sh $(BIN)/pytest

# The container image alone: built offline from Debian's packages and run read-only (tests/deploy).
image-test: $(STAMP)
	bash tests/deploy/install_tools.sh
	CDS_IMAGE_TEST=1 PYTHON=$(BIN)/python $(BIN)/pytest -q tests/deploy/test_image.py

# The image's lock file, with hashes and without any index address (deploy/Dockerfile installs from it).
lock: $(STAMP)
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-trusted-host --no-emit-find-links --output-file=deploy/requirements.lock \
	  pyproject.toml deploy/requirements-image.in

# Benchmarks print ratios; they are never part of `make test`.
bench: $(STAMP) $(NODE_STAMP)
	bash bench/install_tools.sh
	$(BIN)/python bench/bench_fhir.py
	$(BIN)/python bench/bench_hooks.py
	$(BIN)/python bench/bench_inprocess.py
	$(BIN)/python bench/bench_audit.py
	$(BIN)/python bench/bench_screen.py
	$(BIN)/python bench/bench_monitor.py

# Mutation testing (CPU heavy, never part of `make test`): bench/README.md, "Mutation testing".
# MUTANTS narrows the run to mutmut names, e.g. MUTANTS='cds_service.security.replay*'; JOBS = parallel mutants.
MUTANTS ?= cds_service.rules.* cds_service.cards.dexamethasone.* cds_service.security.jwt_auth.* cds_service.security.replay.*
JOBS    ?= 1
MUTATION_STAMP := $(VENV)/.mutation-installed
$(MUTATION_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,mutation]'
	@touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	nice -n 10 $(BIN)/mutmut run --max-children $(JOBS) $(foreach m,$(MUTANTS),'$(m)')
	$(BIN)/python bench/mutation_report.py

# The whole hostile catalogue on every path of the real requests (~35,000 calls, a few minutes);
# `make test` runs a seeded sample of it. SEED and COUNT choose another or a smaller run.
fuzz: $(STAMP)
	$(BIN)/python bench/fuzz_mutations.py $(if $(SEED),--seed $(SEED)) $(if $(COUNT),--count $(COUNT))

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(FHIR_SERVER)/node_modules $(BROWSER_TESTS)/node_modules \
		$(CQL_TOOLS)/node_modules tests/artifacts mutants
