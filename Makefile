# Two commands set up everything on a fresh machine:
#   make demo   create .venv, install shotfit pinned (CPU torch), run the sample job
#   make test   install what the tests need, run them
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet
LOCK   := requirements/lock.txt
DEMO_OUT ?= demo_out

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned in the lock and installed first, so nothing later can pull a CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK)
	$(PIP) install -c $(LOCK) torch
	$(PIP) install -c $(LOCK) -e '.[sample,sweep,export]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -c $(LOCK) -e '.[sample,sweep,export,aws,test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/shotfit demo --out $(DEMO_OUT)

test: install-test
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
