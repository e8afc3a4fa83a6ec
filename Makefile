# Every target creates .venv and installs the project into it on first use, so a fresh
# clone needs nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := build/demo

BEAM_VENV  := .venv-beam
BEAM_STAMP := $(BEAM_VENV)/.installed-stamp

.PHONY: venv demo record gate test test-slow test-all test-beam lint bench bench-beam clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,tflite,html]"
	touch $(STAMP)

venv: $(STAMP)

# Apache Beam gets a venv of its own: it pins protobuf and friends, and the core suite must
# not run on whatever versions Beam chose.
$(BEAM_STAMP): pyproject.toml
	test -x $(BEAM_VENV)/bin/python || $(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BEAM_VENV)/bin/python -m pip install --quiet -e ".[dev,tflite,beam]"
	touch $(BEAM_STAMP)

# The main job on the built-in demo model: train a small digits CNN, record its golden,
# then gate three candidates: one that must pass, one whose regression must be caught (and
# localized) and one whose slowdown must be caught.
demo: $(STAMP)
	$(BIN)/python -m snapshot_tool.demo $(DEMO)
	$(BIN)/snapshot-tool record $(DEMO)/baseline --golden goldens/demo.h5 \
		--inputs $(DEMO)/digits.npz --labels $(DEMO)/digits.npz:labels --batch-size 32 --force
	@echo "== candidate 1: same weights behind a rewritten serving wrapper (expect PASS)"
	$(BIN)/snapshot-tool compare $(DEMO)/candidate_ok --golden goldens/demo.h5 \
		--config goldens/demo.toml --baseline-model $(DEMO)/baseline \
		--report-json $(DEMO)/report_ok.json
	@echo "== candidate 2: one damaged conv filter, latency against the stored baseline (expect FAIL, exit 1, localized to conv1)"
	@$(BIN)/snapshot-tool compare $(DEMO)/candidate_broken --golden goldens/demo.h5 \
		--config goldens/demo.toml --report-json $(DEMO)/report_broken.json --localize; \
	rc=$$?; if [ $$rc -eq 1 ]; then echo "demo: regression caught (exit 1), as expected"; \
	else echo "demo: expected exit 1, got $$rc"; exit 1; fi
	@echo "== candidate 3: same outputs, more work per call, timed side by side (expect latency FAIL)"
	@$(BIN)/snapshot-tool compare $(DEMO)/candidate_slow --golden goldens/demo.h5 \
		--config goldens/demo.toml --baseline-model $(DEMO)/baseline; \
	rc=$$?; if [ $$rc -eq 1 ]; then echo "demo: slowdown caught (exit 1), as expected"; \
	else echo "demo: expected exit 1, got $$rc"; exit 1; fi

# Record a golden from a known-good model (ARGS: more record options, e.g. --num-samples 256):
#   make record MODEL=export/model GOLDEN=goldens/model.h5 [ARGS="..."]
record: $(STAMP)
	$(if $(and $(MODEL),$(GOLDEN)),,$(error usage: make record MODEL=path GOLDEN=path.h5 [ARGS="..."]))
	$(BIN)/snapshot-tool record "$(MODEL)" --golden "$(GOLDEN)" $(ARGS)

# The release gate: exit 1 on a regression, with JUnit, HTML and Markdown reports in REPORT
# and, on failure, the obtained golden beside GOLDEN. BASELINE times latency side by side.
#   make gate CANDIDATE=build/candidate GOLDEN=goldens/model.h5 [BASELINE=export/model]
#             [CONFIG=snapshot.toml] [REPORT=build/report] [ARGS="..."]
REPORT ?= build/report
gate: $(STAMP)
	$(if $(and $(CANDIDATE),$(GOLDEN)),,$(error usage: make gate CANDIDATE=path GOLDEN=path.h5 [BASELINE=path] [CONFIG=snapshot.toml] [REPORT=dir]))
	$(BIN)/snapshot-tool compare "$(CANDIDATE)" --golden "$(GOLDEN)" \
		$(if $(BASELINE),--baseline-model "$(BASELINE)") $(if $(CONFIG),--config "$(CONFIG)") \
		--junit "$(REPORT)/junit.xml" --html "$(REPORT)/report.html" \
		--markdown "$(REPORT)/summary.md" $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# pytest exits 5 when no test carries the marker; that is not a failure here.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

# --runner beam on Beam's DirectRunner, slow cases included (two worker processes).
test-beam: $(BEAM_STAMP)
	$(BEAM_VENV)/bin/python -m pytest -q -m "slow or not slow" tests/integration/test_beam.py

lint: $(STAMP)
	$(BIN)/ruff check snapshot_tool tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/latency_gate.py
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/large_goldens.py

bench-beam: $(BEAM_STAMP)
	$(BEAM_VENV)/bin/python benchmarks/beam_scaling.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
