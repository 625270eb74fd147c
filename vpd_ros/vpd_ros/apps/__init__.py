# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Applications on top of the engine and the node: the ``vpd-ros`` CLI, bench, demo, soak,
the simulated camera and the loopback process harness."""
