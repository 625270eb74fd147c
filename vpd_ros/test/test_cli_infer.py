# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros infer`` end to end on real image files, through the installed console script."""

import os
import subprocess
import sys

import cv2
import numpy as np

from vpd_ros.apps.cli_infer import depth_to_png_mm
from vpd_ros.data import render_scene

VPD_ROS = os.path.join(os.path.dirname(sys.executable), 'vpd-ros')


def test_infer_writes_depth_masks_and_picture(tmp_path):
    """Depth PNG in mm matches the .npy in metres; one mask per query; a side-by-side picture."""
    images = tmp_path / 'in'
    images.mkdir()
    for seed in (1, 2):
        cv2.imwrite(str(images / f's{seed}.png'), render_scene(seed).rgb[..., ::-1])
    out = tmp_path / 'out'
    exe = VPD_ROS if os.path.exists(VPD_ROS) else None
    cmd = ([exe] if exe else [sys.executable, '-m', 'vpd_ros.apps.cli']) + [
        'infer', str(images), '-o', str(out), '--weights', 'random:tiny',
        '-q', 'the red ball', '-q', 'the cube on the left']
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # a hang guard
    assert result.returncode == 0, result.stderr
    for seed in (1, 2):
        depth = np.load(out / f's{seed}_depth.npy')
        assert depth.shape == (240, 320) and depth.dtype == np.float32
        png = cv2.imread(str(out / f's{seed}_depth.png'), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16
        np.testing.assert_array_equal(png, depth_to_png_mm(depth))
        assert np.abs(png / 1000.0 - depth).max() <= 0.0005 + 1e-6
        for i in (0, 1):
            mask = cv2.imread(str(out / f's{seed}_mask{i}.png'), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (240, 320) and set(np.unique(mask)) <= {0, 255}
        vis = cv2.imread(str(out / f's{seed}_vis.png'))
        assert vis.shape[1] >= 3 * 320
    assert result.stdout.count(' ms') == 2


def test_depth_png_conversion_marks_invalid_as_zero():
    """NaN, non-positive and beyond-uint16 depths become 0 (the usual 'no depth' value)."""
    d = np.array([[1.2345, np.nan, -1.0, 70.0, 0.0004]], np.float32)
    np.testing.assert_array_equal(depth_to_png_mm(d), [[1234, 0, 0, 0, 0]])


def test_engine_options_are_checked_by_the_engine_rules(capsys):
    """The CLI takes choices and checks from engine.config: bad values stop parsing, named."""
    import pytest

    from vpd_ros.apps.cli import build_parser
    from vpd_ros.apps.cli_common import engine_config_from_args, engine_spec_from_args

    parser = build_parser()
    args = parser.parse_args(['eval', '--input-size', '64', '96', '--scene', '3',
                              '--tasks', 'refer', '--weights', 'random:tiny'])
    assert engine_config_from_args(args).input_size == (64, 96)
    assert engine_spec_from_args(args).tasks == ('refer',)
    assert (args.scene, args.mask_threshold) == (3, 0.5)
    for bad, named in ((['--input-size', '64', '60'], 'multiples of 32'),
                       (['--mask-threshold', '1.5'], 'must be in (0, 1)'),
                       (['--scene', '-2'], '--scene'), (['--device', 'gpu'], '--device'),
                       (['--dtype', 'float8'], 'float8')):
        with pytest.raises(SystemExit):
            parser.parse_args(['infer', 'x', *bad])
        assert named in capsys.readouterr().err
