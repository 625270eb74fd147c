# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checks shared by the deployment-backend tests (test_deploy.py, test_evp.py)."""

import numpy as np


def rel_l2(a, b):
    """Relative L2 distance of a to the reference b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def rebuilds(caplog):
    """How many times the log says a start found no cached graphs (and built the models)."""
    return sum(r.msg.startswith('no cached graphs') for r in caplog.records)


def refuse_model(*_args, **_kwargs):
    """Stands in for a model constructor where a start from the cache must build none."""
    raise AssertionError('a start from the cache built a torch model')
