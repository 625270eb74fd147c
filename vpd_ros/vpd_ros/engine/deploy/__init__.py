# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deployment backends: the engine's models exported to ONNX and run by ONNX Runtime or OpenVINO."""
