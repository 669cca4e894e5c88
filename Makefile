# Every target creates .venv itself; a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_WH := demo-warehouse
TT     := $(BIN)/tokentrail

.PHONY: venv demo test test-fast bench lint fuzz soak clean samples

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_WH)
	$(TT) ingest sample_logs --warehouse $(DEMO_WH) --rules sample_logs/rules.yaml
	$(TT) report --warehouse $(DEMO_WH) --by key_name
	$(TT) report --warehouse $(DEMO_WH) --by route
	$(TT) report --warehouse $(DEMO_WH) --by end_user | head -n 16
	$(TT) report --warehouse $(DEMO_WH) --by key_name --by feature --by model
	@echo "(budgets and audit exit 1 when a budget is exceeded or an allowlist broken: the demo data has both)"
	-$(TT) budgets --warehouse $(DEMO_WH) --rules sample_logs/rules.yaml --at 2025-03-28
	-$(TT) audit ips --warehouse $(DEMO_WH) --rules sample_logs/rules.yaml
	-$(TT) anomalies --warehouse $(DEMO_WH) --by key_name
	-$(TT) report --warehouse $(DEMO_WH) --html demo-report.html --rules sample_logs/rules.yaml
	@echo "(an alert firing: watch evaluates budgets at shutdown too; --once processes what is there and stops)"
	rm -f demo-alerts.jsonl demo-alert-state.json
	$(TT) watch sample_logs --warehouse $(DEMO_WH) --rules sample_logs/rules.yaml --once \
	  --alerts demo-alerts.jsonl --alert-state demo-alert-state.json
	@$(BIN)/python -c "import json; [print(json.loads(l)['text']) for l in open('demo-alerts.jsonl')]"
	$(TT) export focus --warehouse $(DEMO_WH) --output demo-focus.csv
	@head -c 600 demo-focus.csv; echo " …"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/readme_table.py

lint: $(STAMP)
	$(BIN)/ruff check ingest attribution tests bench sample_logs
	$(BIN)/mypy
	$(BIN)/lint-imports

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_fuzz.py

soak: $(STAMP)
	TOKENTRAIL_SOAK=1 $(BIN)/python -m pytest -q tests/test_watch_faults.py

samples: $(STAMP)
	rm -rf sample_logs/app sample_logs/batch
	$(BIN)/python sample_logs/make_samples.py

clean:
	rm -rf $(VENV) $(DEMO_WH) demo-report.html demo-alerts.jsonl demo-alert-state.json demo-focus.csv .pytest_cache .hypothesis
