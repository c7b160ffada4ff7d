# Everything a fresh machine needs goes through .venv; both targets create or reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so nothing else can pull a CUDA build in its place.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# The explorer's browser test drives the system's Chromium (Playwright's own download does not
	# work offline); installed here where it is missing and apt-get may run, else that test skips.
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "no system Chromium: the explorer's browser test will skip (apt-get install chromium)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/guanxi demo

# The whole suite, with the 15 slowest tests listed at the end (CI runs this).
test: $(STAMP)
	$(PY) -m pytest -q --durations=15

# The quick tier: no model training, no servers, no real datasets (under two minutes here).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=15

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis
