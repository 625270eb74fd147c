# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training for VPD models: losses, optimiser groups and schedules, loops, tiny VAE.

The datasets it trains on live in vpd_ros.data.
"""
