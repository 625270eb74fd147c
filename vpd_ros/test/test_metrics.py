# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Official depth and referring metrics against values computed by hand."""

import math

import numpy as np
import pytest

from vpd_ros.apps.metrics import (DEPTH_METRICS, EIGEN_CROP, DepthMeter, ReferMeter,
                                  depth_eval_mask, depth_metrics, format_metrics,
                                  intersection_union)


def test_double_depth_gives_hand_computed_metrics():
    """pred = 2 gt: abs_rel 1, no pixel within 1.25^3, log errors ln 2, silog ln2 sqrt(0.5)."""
    gt = np.array([[1.0, 2.0], [3.0, 4.0]])
    m = depth_metrics(2 * gt, gt)
    assert m['abs_rel'] == pytest.approx(1.0)
    assert (m['d1'], m['d2'], m['d3']) == (0.0, 0.0, 0.0)
    assert m['sq_rel'] == pytest.approx(gt.mean())  # (2g - g)^2 / g = g
    assert m['rmse'] == pytest.approx(math.sqrt((gt ** 2).mean()))
    assert m['rmse_log'] == pytest.approx(math.log(2))
    assert m['log10'] == pytest.approx(math.log10(2))
    assert m['silog'] == pytest.approx(math.log(2) * math.sqrt(0.5))
    assert set(m) == set(DEPTH_METRICS)


def test_threshold_accuracies_count_pixels():
    """Ratios 1.1, 1.3, 1.6, 2.5 fall in <1.25, <1.5625, <1.953, none: d1..d3 = 1/4, 2/4, 3/4."""
    gt = np.ones((1, 4))
    pred = np.array([[1.1, 1 / 1.3, 1.6, 2.5]])
    m = depth_metrics(pred, gt)
    assert (m['d1'], m['d2'], m['d3']) == (0.25, 0.5, 0.75)


def test_eval_region_and_invalid_predictions():
    """GT outside (min, max) is ignored; inf predictions become max and nan become min."""
    gt = np.array([[0.0, 2.0, 12.0, 5.0]])
    pred = np.array([[7.0, 2.0, 1.0, np.inf]])
    assert depth_eval_mask(gt).tolist() == [[False, True, False, True]]
    m = depth_metrics(pred, gt, max_depth=10.0)
    assert m['abs_rel'] == pytest.approx((0.0 + 1.0) / 2)  # inf -> 10 against 5
    nan_case = depth_metrics(np.array([[np.nan]]), np.array([[1.0]]), min_depth=0.5)
    assert nan_case['abs_rel'] == pytest.approx(0.5)
    with pytest.raises(ValueError, match='no ground-truth pixel'):
        depth_metrics(np.ones((1, 2)), np.zeros((1, 2)))


def test_eigen_crop_only_counts_the_crop():
    """Errors outside rows 45:471, cols 41:601 do not count; other sizes are refused."""
    gt = np.full((480, 640), 2.0)
    pred = gt.copy()
    pred[:45] = 9.0
    pred[:, 601:] = 9.0
    assert depth_metrics(pred, gt, eigen_crop=True)['abs_rel'] == 0.0
    assert depth_metrics(pred, gt)['abs_rel'] > 0.0
    assert depth_eval_mask(gt, eigen_crop=True).sum() == (
        (EIGEN_CROP[1] - EIGEN_CROP[0]) * (EIGEN_CROP[3] - EIGEN_CROP[2]))
    with pytest.raises(ValueError, match='Eigen'):
        depth_eval_mask(np.ones((240, 320)), eigen_crop=True)


def test_depth_meter_averages_over_images_not_pixels():
    """One perfect 1-pixel image and one 100-pixel image at abs_rel 1 average to 0.5."""
    meter = DepthMeter()
    meter.update(np.array([[3.0]]), np.array([[3.0]]))
    meter.update(np.full((10, 10), 4.0), np.full((10, 10), 2.0))
    result = meter.result()
    assert result['abs_rel'] == pytest.approx(0.5)
    assert result['d1'] == pytest.approx(0.5)
    assert result['count'] == 2
    assert 'abs_rel 0.5000' in format_metrics(result)


def test_refer_meter_by_counting_pixels():
    """I/U counted by hand: 2/8 and 3/3 give oIoU 5/11, mIoU 0.625, P@0.5 = P@0.9 = 0.5."""
    pred = np.zeros((4, 4), bool)
    gt = np.zeros((4, 4), bool)
    pred[0, :4] = True          # 4 pixels
    gt[0, 2:4] = True           # overlap 2
    gt[1, :4] = True            # + 4 more GT pixels: union 4 + 4 = 8
    assert intersection_union(pred, gt) == (2, 8)
    meter = ReferMeter()
    assert meter.update(pred, gt) == pytest.approx(0.25)
    perfect = np.zeros((4, 4), bool)
    perfect[3, :3] = True
    assert meter.update(perfect, perfect) == 1.0
    r = meter.result()
    assert r['oIoU'] == pytest.approx(5 / 11)
    assert r['mIoU'] == pytest.approx(0.625)
    assert r['P@0.5'] == r['P@0.9'] == 0.5
    assert r['count'] == 2


def test_empty_union_counts_as_zero_iou():
    """An empty prediction on an empty target scores IoU 0, as the official test does."""
    meter = ReferMeter()
    empty = np.zeros((3, 3), bool)
    assert meter.update(empty, empty) == 0.0
    assert meter.result()['mIoU'] == 0.0
    with pytest.raises(ValueError, match='shapes differ'):
        meter.update(np.zeros((2, 2)), np.zeros((3, 3)))
