# The two commands of the README. Everything else here is what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

# (Re)install when the project's metadata changes; `pip install -e` keeps code edits live.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/cds-service serve

# The audit tests need PostgreSQL: the script uses the machine's, or starts (installing it if need be)
# and afterwards stops a throwaway one; without either the PostgreSQL tests skip, saying why.
test: $(STAMP)
	$(BIN)/ruff check .
	PYTHON=$(BIN)/python bash tests/services/with_postgres.sh $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
