# The two set-up commands (see README): `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test bench clean package

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

demo: $(PY)
	$(PY) -m pip install -q -e .
	$(VENV)/bin/siem-forwarder demo

test: $(PY) package
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pytest -n 2 -q

# The Splunk add-on: UCC build + package into dist/, then AppInspect (report in dist/).
package: $(PY)
	$(PY) packaging/build.py

bench: $(PY)
	$(PY) -m pip install -q -e .
	$(PY) -m bench

clean:
	rm -rf $(VENV) demo-output build dist *.egg-info
