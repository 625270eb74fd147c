# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Score calibration: the fit recovers a known model, its measures, stale calibrations refused."""

import logging

import numpy as np

from vpd_ros.engine.score_calibration import FILENAME, MODEL_FILE, ScoreCalibration, file_sha256, \
    fit_logistic, mask_features, reliability


def test_fit_recovers_a_known_logistic_model():
    """Labels drawn from sigmoid(3 x0 - 2 x1 + 0.5) give back about those numbers."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 2))
    y = (rng.random(20000) < 1 / (1 + np.exp(-(3 * x[:, 0] - 2 * x[:, 1] + 0.5)))).astype(float)
    w, b = fit_logistic(x, y)
    np.testing.assert_allclose(w, [3.0, -2.0], atol=0.15)
    assert abs(b - 0.5) < 0.1


def test_reliability_measures():
    """A perfect score: Brier 0, AUC 1; a constant at the base rate: ECE 0, AUC 0.5."""
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0], float)
    perfect = reliability(y, y)
    assert perfect['brier'] == 0 and perfect['auc'] == 1 and perfect['ece'] == 0
    constant = reliability(np.full(8, 0.5), y)
    assert constant['ece'] == 0 and constant['auc'] == 0.5 and constant['brier'] == 0.25


def test_features_of_masks():
    """Mean probability inside the mask and log10 of its image fraction; empty masks are 0."""
    probs = np.zeros((2, 10, 10), np.float32)
    probs[0, :5] = 0.9
    masks = probs > 0.5
    f = mask_features(probs, masks)
    np.testing.assert_allclose(f[0], [0.9, np.log10(0.5)], rtol=1e-6)
    assert f[1, 0] == 0
    cal = ScoreCalibration(weights=[10.0, 0.0], bias=-5.0)
    scores = cal.score(probs, masks)
    assert scores[1] == 0.0 and abs(scores[0] - 1 / (1 + np.exp(-4.0))) < 1e-9
    assert cal.score(probs[:0], masks[:0]) == []  # a frame without queries


def test_calibration_for_other_weights_is_refused(tmp_path, caplog):
    """A calibration whose model hash differs from the folder's weights is not used."""
    (tmp_path / MODEL_FILE).write_bytes(b'weights v1')
    cal = ScoreCalibration(weights=[1.0, 0.0], bias=0.0,
                           model_sha256=file_sha256(str(tmp_path / MODEL_FILE)))
    assert cal.save(str(tmp_path)).endswith(FILENAME)
    assert ScoreCalibration.load(str(tmp_path)) == cal
    (tmp_path / MODEL_FILE).write_bytes(b'weights v2, retrained')
    with caplog.at_level(logging.WARNING, logger='vpd_ros'):
        assert ScoreCalibration.load(str(tmp_path)) is None
    assert 'fitted for other weights' in caplog.text
    assert ScoreCalibration.load(str(tmp_path / 'nowhere')) is None
