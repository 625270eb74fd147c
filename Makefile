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
	$(VENV_PYTHON) -m pytest --junitxml=build/test-results.xml $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/vpd-ros demo $(DEMO_ARGS)

lint: setup
	$(VENV_PYTHON) -m pytest vpd_ros/test/test_lint.py $(PYTEST_ARGS)

clean:
	rm -rf build install log .pytest_cache .ruff_cache
	find vpd_ros vpd_ros_interfaces -name __pycache__ -type d -prune -exec rm -rf {} +
	find vpd_ros -maxdepth 1 -name '*.egg-info' -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)"
