# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The shipped tiny model: loads by name, meets its measured held-out quality, follows queries.

Thresholds sit below what was measured on held-out seeds (see weights/tiny/MODEL_CARD.md) with a
margin for the smaller sample used here.
"""

import logging
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open

from vpd_ros.data import HELDOUT_SEEDS_START, render_scene
from vpd_ros.engine import PACKAGE_WEIGHTS, EngineConfig, EngineSpec, load_engine
from vpd_ros.apps.evaluate import (distinct_selections, evaluate_depth, evaluate_refer,
                                   rendered_depth, rendered_refer)
from vpd_ros.apps.calibrate_scores import collect
from vpd_ros.engine import shipped
from vpd_ros.engine.score_calibration import CHECK_SEEDS, FIT_SEEDS, reliability
from vpd_ros.apps.refer_breakdown import format_breakdown, refer_breakdown

SEEDS = range(HELDOUT_SEEDS_START, HELDOUT_SEEDS_START + 20)
TINY = os.path.join(PACKAGE_WEIGHTS, 'tiny')


@pytest.fixture(scope='module')
def engine():
    """The shipped tiny model on CPU, loaded by name, on one thread (restored afterwards).

    One intra-op thread is several times faster than two on a shared 2-core machine.
    """
    threads = torch.get_num_threads()
    yield load_engine(EngineSpec(weights='tiny'), EngineConfig(device='cpu', num_threads=1))
    torch.set_num_threads(threads)


def test_weights_are_small_fp16_and_share_one_vae(engine):
    """Both models are fp16 safetensors of a few MB, and their VAE encoders are identical."""
    for task in ('depth', 'refer'):
        path = os.path.join(TINY, task, 'model.safetensors')
        assert os.path.getsize(path) < 16e6, path
        with safe_open(path, 'pt') as f:
            dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
        assert 'F32' not in dtypes, dtypes
    assert engine.shared_vae
    assert os.path.isfile(os.path.join(TINY, 'MODEL_CARD.md'))


def test_depth_on_heldout_scenes(engine):
    """Mean per-image metrics on 20 held-out scenes at 320x240."""
    m = evaluate_depth(engine, rendered_depth(SEEDS))
    assert m['count'] == len(SEEDS)
    assert m['abs_rel'] <= DEPTH_ABS_REL_MAX, m
    assert m['d1'] >= DEPTH_D1_MIN, m


def test_refer_on_heldout_scenes(engine):
    """All expressions of 20 held-out scenes: mean IoU above the measured level minus margin."""
    m = evaluate_refer(engine, rendered_refer(SEEDS))
    assert m['count'] >= 60
    assert m['mIoU'] >= REFER_MIOU_MIN, m


def test_different_queries_select_different_objects(engine):
    """Queries on one image select different objects, and mostly their own targets.

    All expressions of 10 held-out scenes, one engine call per image: the object under most of
    each mask must be the target well above chance (1 in 3-6 objects), and in nearly every
    scene the queries must select at least two different objects.
    """
    hits, total, varied = 0, 0, 0
    for scene in map(render_scene, SEEDS[:10]):
        texts = [r.text for r in scene.expressions]
        chosen = distinct_selections(engine, scene.rgb, texts, scene.instances)
        hits += sum(c == r.target_id for c, r in zip(chosen, scene.expressions))
        total += len(texts)
        varied += len(set(chosen) - {0}) >= 2
    assert hits / total >= SELECTION_HIT_MIN, (hits, total)
    assert varied >= 8, varied


def test_loading_tiny_says_once_what_it_cannot_do(caplog, monkeypatch):
    """One warning line naming rendered rooms and the official checkpoints, once per process."""
    monkeypatch.setattr(shipped, '_said', set())
    with caplog.at_level(logging.WARNING, logger='vpd_ros'):
        for weights in ('tiny', 'tiny', 'random:tiny'):
            load_engine(EngineSpec(weights=weights, tasks=('depth',)), EngineConfig(device='cpu'))
    said = [r.getMessage() for r in caplog.records if r.name == 'vpd_ros']
    assert len(said) == 1 and '\n' not in said[0], said
    assert 'rendered rooms only' in said[0] and 'official VPD checkpoints' in said[0]


def test_scores_are_calibrated_on_scenes_outside_the_fit(engine):
    """Scores match how often masks are right, on scenes neither fitted nor checked on.

    Brier score below the raw mean probability's, mean score near the rate of right masks
    (IoU >= 0.5), right masks ranked above wrong ones; the engine's scores are these.
    """
    cal = engine.score_calibration
    assert cal is not None, 'refer/score_calibration.json missing or fitted for other weights'
    used = range(min(FIT_SEEDS[0], CHECK_SEEDS[0]), max(FIT_SEEDS[1], CHECK_SEEDS[1]))
    seeds = range(used.stop, used.stop + 15)
    features, right, raw = collect(engine, seeds, progress=False)
    calibrated = reliability(cal.predict(features), right)
    assert calibrated['brier'] < reliability(raw, right)['brier'], calibrated
    assert abs(cal.predict(features).mean() - right.mean()) < 0.15
    assert calibrated['auc'] >= SCORE_AUC_MIN, calibrated
    scene = render_scene(seeds[0])
    pred = engine.predict(scene.rgb, [r.text for r in scene.expressions], depth=False)
    np.testing.assert_allclose(pred.scores, cal.score(pred.probs, pred.masks))


def test_breakdown_by_category_adds_up(engine):
    """Per-category referring metrics: 'all' is the plain evaluation, the kinds partition it."""
    scenes = [render_scene(s) for s in SEEDS[:3]]
    table = refer_breakdown(engine, scenes)
    plain = evaluate_refer(engine, rendered_refer(SEEDS[:3]))
    for key, value in plain.items():
        assert table['all'][key] == pytest.approx(value), key
    kinds = [m['count'] for tag, m in table.items() if tag.startswith('kind ')]
    assert sum(kinds) == table['all']['count'] == sum(len(s.expressions) for s in scenes)
    assert 0.0 <= table['all']['hit'] <= 1.0
    assert 'mIoU' in format_breakdown(table).splitlines()[0]


# Measured on these seeds (MODEL_CARD.md) minus a margin.
DEPTH_ABS_REL_MAX = 0.12  # measured 0.0965
DEPTH_D1_MIN = 0.90  # measured 0.946
REFER_MIOU_MIN = 0.35  # measured 0.440
SELECTION_HIT_MIN = 0.50  # measured 0.60 (48 of 80)
SCORE_AUC_MIN = 0.65  # measured 0.80 on 1600 expressions (refer/score_calibration.json)
