# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deployment: frames in, depth and masks out (loading, options, pre/post-processing, TTA,
3D grounding and debug pictures). Imports model/, never ROS."""

from .runner import (PACKAGE_WEIGHTS, EngineConfig, Prediction, VPDEngine, check_tasks,
                     default_weights)

__all__ = ['PACKAGE_WEIGHTS', 'EngineConfig', 'Prediction', 'VPDEngine', 'check_tasks',
           'default_weights']
