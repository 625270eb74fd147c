# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# make setup  - create/update .venv (torch, ROS 2 Kilted wheels, interfaces, vpd_ros editable)
# make test   - setup, then the whole test suite (JUnit report in build/test-results.xml)
# make demo   - setup, then `vpd-ros demo`
# make lint   - setup, then ruff, pydocstyle, license headers and manifests (test_lint.py)
# make clean  - remove build outputs and caches (keeps .venv); make distclean also removes .venv

SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
VENV_PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test workers (pytest-xdist, one test file per worker at a time): node tests mostly wait on
# processes and DDS while the other worker computes. PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= 2
DEMO_ARGS ?=

# Network rule, belt and braces (the test conftest sets its own per-session values too):
# DDS discovery stays on this host, on a private domain, with logs in a temporary folder.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID := $(shell shuf -i 100-230 -n 1)
export ROS_LOG_DIR := $(or $(TMPDIR),/tmp)/vpd_ros_ros_log
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
unexport ROS_STATIC_PEERS ROS_DISCOVERY_SERVER FASTRTPS_DEFAULT_PROFILES_FILE \
	FASTDDS_DEFAULT_PROFILES_FILE

.PHONY: setup test demo lint clean distclean

setup:
	VENV="$(VENV)" bash scripts/setup.sh

test: setup
	mkdir -p build
	$(VENV_PYTHON) -m pytest --junitxml=build/test-results.xml -n $(PYTEST_WORKERS) \
		--dist loadfile $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/vpd-ros demo $(DEMO_ARGS)

# make test-jazzy: create/update .venv-jazzy (ROS 2 Jazzy wheels, scripts/setup-jazzy.sh) and run
# the node tests with it (docs/reliability.md). Started from the Kilted venv (pytest, make in
# a venv shell), the bootstrap mark and library path of that venv must not reach the Jazzy one.
JAZZY_VENV ?= $(CURDIR)/.venv-jazzy
JAZZY_TESTS = $(wildcard vpd_ros/test/test_node*.py) vpd_ros/test/test_bad_input.py \
	vpd_ros/test/test_faults.py vpd_ros/test/test_interfaces.py
.PHONY: test-jazzy
test-jazzy:
	env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u LD_LIBRARY_PATH VENV="$(JAZZY_VENV)" \
		bash scripts/setup-jazzy.sh
	mkdir -p build
	env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u LD_LIBRARY_PATH $(JAZZY_VENV)/bin/python -m pytest \
		--junitxml=build/test-results-jazzy.xml $(JAZZY_TESTS) $(PYTEST_ARGS)

lint: setup
	$(VENV_PYTHON) -m pytest vpd_ros/test/test_lint.py $(PYTEST_ARGS)

clean:
	rm -rf build install log .pytest_cache .ruff_cache
	find vpd_ros vpd_ros_interfaces -name __pycache__ -type d -prune -exec rm -rf {} +
	find vpd_ros -maxdepth 1 -name '*.egg-info' -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)"
