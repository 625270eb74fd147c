# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""VPD depth and referring segmentation for ROS 2.

Layers, each importing only those below: model/ -> engine/ -> ros/ -> apps/, with data/ and
training/ beside the engine (docs/architecture.md; test_layers.py checks the rules).
"""
