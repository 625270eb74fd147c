# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Applications on top of the engine and the node.

The ``vpd-ros`` CLI, bench, demo, soak, the simulated camera, the client of vpd_node and the
loopback process harness.
"""
