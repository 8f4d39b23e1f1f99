# Two commands set up everything on a fresh machine:
#   make demo   create .venv, install shotfit pinned (CPU torch), run the sample job
#   make test   install what the tests need, run them
# and two build and check the container images (with a Docker engine, or without one: docker/build.sh):
#   make image        the SageMaker training image and the HTTP service's image (CPU)
#   make image-test   build them, then run a tiny job and a service session in them (tests/image)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet
LOCK   := requirements/lock.txt
DEMO_OUT ?= demo_out
SAGEMAKER_IMAGE ?= shotfit:sagemaker-cpu
SERVICE_IMAGE   ?= shotfit:service-cpu

.PHONY: demo test services install install-test image image-test image-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned in the lock and installed first, so nothing later can pull a CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK)
	$(PIP) install -c $(LOCK) torch
	$(PIP) install -c $(LOCK) -e '.[sample,sweep,export,mlflow-ui]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -c $(LOCK) -e '.[sample,sweep,export,mlflow-ui,aws,test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/shotfit demo --out $(DEMO_OUT)

# PostgreSQL and headless Chromium, which the service's tests run for real (installed when absent)
services:
	scripts/test-services.sh

# on every core (up to 4 processes); the tests that start Ray share one process (tests/conftest.py)
test: install-test services
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadgroup

# the venv only for its pip, which finds this machine's CPU torch wheel for an engine-free build
image: $(BIN)/python
	PYTHON=$(BIN)/python docker/build.sh --target sagemaker --tag $(SAGEMAKER_IMAGE)
	PYTHON=$(BIN)/python docker/build.sh --target service --tag $(SERVICE_IMAGE)

image-test: install-test image
	$(MAKE) image-check

# the checks alone, on images already built (.ci/run builds them beside the tests)
image-check: install-test
	SHOTFIT_TEST_IMAGE=$(SAGEMAKER_IMAGE) SHOTFIT_TEST_SERVICE_IMAGE=$(SERVICE_IMAGE) \
		$(BIN)/python -m pytest tests/image

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
