# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros infer`` end to end on real files, through the installed console script.

One batch run on the shipped model covers good, broken, tiny, big and colliding inputs; the usage
errors stop before torch is imported, so each of them costs a fraction of a second.
"""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from vpd_ros.apps.cli_infer import depth_to_png_mm, output_names, query_slugs
from vpd_ros.data import render_scene
from vpd_ros.engine.shipped import NOTICES

VPD_ROS = os.path.join(os.path.dirname(sys.executable), 'vpd-ros')
LONG_QUERY = 'the red ball ' + 'that is next to the big blue cube on the left ' * 20


def vpd_ros(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real ``vpd-ros`` command and return its result."""
    exe = [VPD_ROS] if os.path.exists(VPD_ROS) else [sys.executable, '-m', 'vpd_ros.apps.cli']
    return subprocess.run(exe + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def batch(tmp_path_factory):
    """One run over a folder of good, broken, tiny, big and same-stem images."""
    root = tmp_path_factory.mktemp('infer')
    images = root / 'in'
    images.mkdir()
    scene = render_scene(1)
    cv2.imwrite(str(images / 'room.png'), scene.rgb[..., ::-1])
    cv2.imwrite(str(images / 'room.jpg'), render_scene(2).rgb[..., ::-1])
    cv2.imwrite(str(images / 'dot.png'), np.full((1, 1, 3), 200, np.uint8))
    (images / 'notes.png').write_text('this is a text file, not a picture\n')
    cv2.imwrite(str(images / 'big.png'), cv2.resize(scene.rgb[..., ::-1], (640, 480)))
    cv2.imwrite(str(images / 'huge.png'), cv2.resize(scene.rgb[..., ::-1], (1000, 750)))
    out = root / 'out'
    result = vpd_ros('infer', str(images), '-o', str(out), '--weights', 'tiny',
                     '--device', 'cpu', '--max-megapixels', '0.5',
                     '-q', 'the red ball', '-q', 'The cube, on the LEFT!', '-q', LONG_QUERY)
    return result, out


def test_batch_exit_code_and_summary(batch):
    """Two of six inputs fail (a text file, an image over the limit): exit 1, all others run."""
    result, out = batch
    assert 'Traceback' not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert 'notes.png: failed: not a readable image' in result.stderr
    assert 'huge.png: failed: 750x1000 pixels (0.8 megapixels) is over --max-megapixels 0.5' \
        in result.stderr
    assert 'processed 4 of 6 images, 2 failed' in result.stdout
    assert str(out) in result.stdout.splitlines()[-1]
    assert result.stdout.count(' ms;') == 4
    assert '6/6' in result.stderr  # the progress bar reached [6/6]


def test_batch_warnings_are_said_once(batch):
    """The shipped-model notice, the cut query and the big image's memory, one line each."""
    result, _ = batch
    assert result.stderr.count(NOTICES['tiny']) == 1
    cut = [line for line in result.stderr.splitlines() if 'text tokens' in line]
    assert len(cut) == 1 and 'only its beginning is used' in cut[0], cut
    big = [line for line in result.stderr.splitlines() if 'megapixels: it takes about' in line]
    assert len(big) == 1 and 'big.png' in big[0] and 'GiB of memory' in big[0], big


def test_batch_outputs_never_overwrite_each_other(batch):
    """room.png and room.jpg keep separate results; masks are named after the queries."""
    _, out = batch
    files = set(os.listdir(out))
    slugs = ['the-red-ball', 'the-cube-on-the-left', query_slugs([LONG_QUERY])[0]]
    for name, size in (('room_png', (240, 320)), ('room_jpg', (240, 320)), ('dot', (1, 1)),
                       ('big', (480, 640))):
        depth = np.load(out / f'{name}_depth.npy')
        assert depth.shape == size and depth.dtype == np.float32
        png = cv2.imread(str(out / f'{name}_depth.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png, depth_to_png_mm(depth))
        for slug in slugs:
            mask = cv2.imread(str(out / f'{name}_mask-{slug}.png'), cv2.IMREAD_UNCHANGED)
            assert mask.shape == size and set(np.unique(mask)) <= {0, 255}
        vis = cv2.imread(str(out / f'{name}_vis.png'))
        assert vis.shape[0] == size[0] and vis.shape[1] > 3 * size[1]
    assert not any(f.startswith(('notes', 'huge')) for f in files)
    assert not (np.load(out / 'room_png_depth.npy') == np.load(out / 'room_jpg_depth.npy')).all()


@pytest.mark.parametrize('args, message', [
    (['missing.png'], 'missing.png: no such file or folder'),
    (['IMG', '-o', 'FILE'], 'output FILE exists and is not a folder'),
    (['IMG', '--input-size', '100x100'], '--input-size [100, 100] must be [height, width], '
                                         'positive multiples of 32'),
    (['IMG', '--input-size', '100', '100'], "size '100' must be HEIGHTxWIDTH, e.g. 480x640"),
    (['IMG', '-q', '   '], 'query 1 is empty'),
    (['IMG', '-q', 'the mug', '-q', ''], 'query 2 is empty'),
    (['EMPTY'], 'no image files'),
])
def test_usage_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    """Each usage error: exit 2, one line naming the problem, no traceback, before any model."""
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / 'file.txt').write_text('x')
    (tmp_path / 'empty').mkdir()
    names = {'IMG': str(image), 'FILE': str(tmp_path / 'file.txt'),
             'EMPTY': str(tmp_path / 'empty')}
    argv = [names.get(a, a) for a in args]
    if '-o' not in argv:
        argv += ['-o', str(tmp_path / 'out')]
    result = vpd_ros('infer', *argv, timeout=120)
    assert result.returncode == 2, result
    assert message.replace('FILE', names['FILE']) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / 'out').exists()


def test_output_names_and_slugs():
    """Same stems get their extension, repeats get a number; slugs are distinct file names."""
    assert output_names(['a/x.png', 'a/x.jpg', 'b/x.png', 'a/y.png']) == \
        ['x_png', 'x_jpg', 'x_png_2', 'y']
    assert query_slugs(['The red mug!', 'the red mug', '***', 'a' * 100]) == \
        ['the-red-mug', 'the-red-mug-2', 'query', 'a' * 40]


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
    args = parser.parse_args(['eval', '--input-size', '64x96', '--scene', '3',
                              '--tasks', 'refer', '--weights', 'random:tiny'])
    assert engine_config_from_args(args).input_size == (64, 96)
    assert engine_spec_from_args(args).tasks == ('refer',)
    assert (args.scene, args.mask_threshold) == (3, 0.5)
    for bad, named in ((['--input-size', '64x60'], 'multiples of 32'),
                       (['--mask-threshold', '1.5'], 'must be in (0, 1)'),
                       (['--scene', '-2'], '--scene'), (['--device', 'gpu'], '--device'),
                       (['--dtype', 'float8'], 'float8')):
        with pytest.raises(SystemExit):
            parser.parse_args(['infer', 'x', *bad])
        assert named in capsys.readouterr().err


def test_cut_queries_are_reported_once_and_no_query_is_fine(capsys):
    """Depth only (no -q) reports nothing; a query over the token length is reported once."""
    from vpd_ros.apps.cli_infer import report_cut_queries
    from vpd_ros.engine import EngineConfig, EngineSpec, load_engine

    engine = load_engine(EngineSpec(weights='random:tiny', tasks=('refer',)),
                         EngineConfig(device='cpu'))
    report_cut_queries(engine, [])
    report_cut_queries(engine, ['the mug', LONG_QUERY])
    cut = [line for line in capsys.readouterr().err.splitlines() if 'text tokens' in line]
    assert len(cut) == 1 and 'the red ball' in cut[0], cut
