# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The thin ROS 2 layer: the node and its own pieces (parameters, worker, conversions)."""
