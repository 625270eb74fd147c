# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests for the NYUv2, RefCOCO and user-format readers and writers, on tiny files written here.

The compressed-RLE fixture string was produced by pycocotools (``mask.encode``) outside this
project, so the decoder is checked against the reference implementation, not against itself.
"""

import json
import os
import pickle

import cv2
import numpy as np
import pytest
from vpd_ros.data.readers import (
    NyuDepthSplit,
    RefCocoSplit,
    UserDepthFolder,
    UserReferJson,
    coco_segmentation_to_mask,
    decode_rle_string,
    load_refs,
    nyu_scene_name,
    read_depth_mm,
    save_refs_json,
    write_depth_mm,
    write_user_depth_dataset,
    write_user_refer_dataset,
)
from vpd_ros.data.scenes import render_scene

POLYGON = [10.0, 5.0, 40.5, 8.0, 35.0, 30.0, 12.0, 25.5]
TRIANGLE = [2.2, 30.3, 9.7, 31.1, 6.1, 38.8]
# pycocotools.mask.encode of _golden_mask(); its area is 542.
GOLDEN_RLE = ('\\4a0g00000000000000000000000000000000P1@\\O8K2N2N2N2O00000O20N1000001N2N2N2N5HX<')


def _golden_mask():
    """A 40x50 mask with a disc and a rectangle (long runs, negative run differences)."""
    yy, xx = np.mgrid[:40, :50]
    disc = (xx - 30) ** 2 + (yy - 12) ** 2 <= 81
    rect = (xx >= 3) & (xx < 20) & (yy >= 20) & (yy < 37)
    return (disc | rect).astype(np.uint8)


def _shoelace(flat):
    """Area of a polygon given as [x0, y0, x1, y1, ...]."""
    x, y = np.asarray(flat[0::2]), np.asarray(flat[1::2])
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


# --------------------------------------------------------------------------- NYUv2


def test_nyu_split_reads_rgb_depth_and_scene_name(tmp_path):
    """The BTS/VPD list layout: depth = png / 1000 exactly, RGB order, official scene name."""
    root = tmp_path / 'nyu_depth_v2' / 'official_splits' / 'test'
    red = np.zeros((6, 8, 3), np.uint8)
    red[..., 0] = 230
    _write_rgb(root / 'bathroom' / 'rgb_00045.jpg', red)
    mm = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1237
    assert cv2.imwrite(str(root / 'bathroom' / 'sync_depth_00045.png'), mm)
    listing = tmp_path / 'nyudepthv2_test_files_with_gt.txt'
    listing.write_text('/bathroom/rgb_00045.jpg /bathroom/sync_depth_00045.png 518.8579\n\n')

    split = NyuDepthSplit(root, listing)
    assert len(split) == 1
    sample = split[0]
    assert sample.depth.dtype == np.float32
    np.testing.assert_array_equal(sample.depth, mm.astype(np.float32) / np.float32(1000))
    assert sample.depth[5, 7] == pytest.approx(47 * 1.237)
    assert sample.rgb.shape == (6, 8, 3) and sample.rgb.dtype == np.uint8
    assert sample.rgb[..., 0].min() > 200 and sample.rgb[..., 1:].max() < 30
    assert sample.scene_name == 'bathroom_rgb_00045.jpg'
    assert sample.focal == pytest.approx(518.8579)


def test_nyu_list_with_wrong_columns_raises(tmp_path):
    """A malformed list line names the file and line instead of failing later."""
    listing = tmp_path / 'list.txt'
    listing.write_text('/a/rgb_1.jpg /a/sync_depth_1.png\n')
    with pytest.raises(ValueError, match='list.txt:1'):
        NyuDepthSplit(tmp_path, listing)


def test_nyu_scene_name_joins_folder_and_file():
    """The scene-class lookup string is '<folder>_<file>' as in the official loader."""
    assert nyu_scene_name('/x/test/living_room/rgb_00001.jpg') == 'living_room_rgb_00001.jpg'


# --------------------------------------------------------------------------- COCO masks


def test_polygon_mask_area_matches_polygon_area():
    """Two polygons are rasterised and united; area within 2% of the exact (shoelace) area."""
    mask = coco_segmentation_to_mask([POLYGON, TRIANGLE], 40, 50)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    exact = _shoelace(POLYGON) + _shoelace(TRIANGLE)
    assert abs(int(mask.sum()) - exact) < 0.02 * exact
    assert mask[15, 25] == 1 and mask[2, 2] == 0 and mask[34, 6] == 1  # inside, outside, triangle
    assert abs(int(coco_segmentation_to_mask([POLYGON], 40, 50).sum()) - 576) < 10  # pycocotools


def test_uncompressed_rle_decodes_column_major():
    """COCO RLE runs go down columns first and start with background."""
    mask = _golden_mask()
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    seg = {'counts': runs, 'size': [40, 50]}
    np.testing.assert_array_equal(coco_segmentation_to_mask(seg, 40, 50), mask)
    with pytest.raises(ValueError):
        coco_segmentation_to_mask({'counts': runs[:-1], 'size': [40, 50]}, 40, 50)


def test_compressed_rle_matches_pycocotools():
    """The LEB128-like counts string decodes to the mask pycocotools encoded."""
    mask = coco_segmentation_to_mask({'counts': GOLDEN_RLE, 'size': [40, 50]}, 40, 50)
    np.testing.assert_array_equal(mask, _golden_mask())
    assert int(mask.sum()) == 542
    assert sum(decode_rle_string(GOLDEN_RLE.encode())) == 2000
    with pytest.raises(ValueError):
        decode_rle_string('0g')  # the second run never ends


# --------------------------------------------------------------------------- RefCOCO


def _refs():
    return [
        {'ref_id': 7, 'ann_id': 100, 'image_id': 42, 'split': 'val', 'category_id': 1,
         'file_name': 'COCO_train2014_000000000042_100.jpg', 'sent_ids': [1, 2],
         'sentences': [{'raw': 'Left red thing', 'sent': 'left red thing', 'sent_id': 1,
                        'tokens': ['left', 'red', 'thing']},
                       {'sent': 'the quad', 'sent_id': 2, 'tokens': ['the', 'quad']}]},
        {'ref_id': 8, 'ann_id': 101, 'image_id': 42, 'split': 'testA', 'category_id': 1,
         'file_name': 'COCO_train2014_000000000042_101.jpg', 'sent_ids': [3],
         'sentences': [{'raw': 'the blob', 'sent': 'the blob', 'sent_id': 3,
                        'tokens': ['the', 'blob']}]},
    ]


def _write_refer_root(tmp_path, refs_writer):
    root = tmp_path / 'refer_data'
    (root / 'refcoco').mkdir(parents=True)
    refs_writer(root / 'refcoco')
    instances = {
        'images': [{'id': 42, 'file_name': 'COCO_train2014_000000000042.jpg', 'height': 40,
                    'width': 50}],
        'annotations': [
            {'id': 100, 'image_id': 42, 'category_id': 1, 'iscrowd': 0,
             'segmentation': [POLYGON]},
            {'id': 101, 'image_id': 42, 'category_id': 1, 'iscrowd': 1,
             'segmentation': {'counts': GOLDEN_RLE, 'size': [40, 50]}}],
        'categories': [{'id': 1, 'name': 'thing'}],
    }
    (root / 'refcoco' / 'instances.json').write_text(json.dumps(instances))
    rgb = np.full((40, 50, 3), 90, np.uint8)
    _write_rgb(root / 'images' / 'mscoco' / 'images' / 'train2014' /
               'COCO_train2014_000000000042.jpg', rgb)
    return root


@pytest.mark.parametrize('fmt', ['pickle_v2', 'pickle_v0', 'json'])
def test_refcoco_split_yields_one_sample_per_sentence(tmp_path, fmt):
    """Pickle (restricted) and JSON refs give the same samples with polygon and RLE masks."""
    def writer(folder):
        if fmt == 'json':
            save_refs_json(_refs(), folder / 'refs(unc).json')
        else:
            proto = 2 if fmt == 'pickle_v2' else 0
            (folder / 'refs(unc).p').write_bytes(pickle.dumps(_refs(), protocol=proto))

    root = _write_refer_root(tmp_path, writer)
    val = RefCocoSplit(root, 'refcoco', 'unc', 'val')
    assert len(val) == 2
    rgb, mask, sentence, ref_id, split = val[0]
    assert rgb.shape == (40, 50, 3) and mask.shape == (40, 50) and mask.dtype == np.uint8
    assert (sentence, ref_id, split) == ('Left red thing', 7, 'val')
    assert abs(int(mask.sum()) - _shoelace(POLYGON)) < 0.02 * _shoelace(POLYGON)
    assert val[1].sentence == 'the quad'  # no 'raw': falls back to 'sent'
    test_a = RefCocoSplit(root, 'refcoco', 'unc', 'testA')
    assert len(test_a) == 1
    np.testing.assert_array_equal(test_a[0].mask, _golden_mask())
    with pytest.raises(ValueError, match='testA'):
        RefCocoSplit(root, 'refcoco', 'unc', 'testB')


class _SystemCall:
    """Pickles as a call of os.system, the classic malicious-pickle payload."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_restricted_unpickler_refuses_code_and_runs_nothing(tmp_path):
    """A refs pickle that would run a shell command is rejected before anything executes."""
    marker = tmp_path / 'pwned'
    payload = pickle.dumps([{'ref_id': 1, 'evil': _SystemCall(f'touch {marker}')}], protocol=2)
    bad = tmp_path / 'refs(unc).p'
    bad.write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        load_refs(bad)
    assert not marker.exists()
    # Control: the same bytes do run code under the plain unpickler, so the test is meaningful.
    pickle.loads(payload)
    assert marker.exists()


def test_restricted_unpickler_refuses_non_container_builtins(tmp_path):
    """Only the plain container and scalar builtins are allowed, not eval/open and friends."""
    bad = tmp_path / 'refs.p'
    bad.write_bytes(pickle.dumps([{'x': eval}]))
    with pytest.raises(pickle.UnpicklingError, match='eval'):
        load_refs(bad)
    with pytest.raises(ValueError, match='.txt'):
        load_refs(tmp_path / 'refs.txt')


# --------------------------------------------------------------------------- user format


def test_user_depth_round_trip_through_writer(tmp_path):
    """Rendered scenes survive export: RGB exact, depth to the millimetre, invalid stays 0."""
    scenes = [render_scene(s, width=64, height=48) for s in (3, 4)]
    stems = write_user_depth_dataset(scenes, tmp_path / 'ds')
    folder = UserDepthFolder(tmp_path / 'ds')
    assert len(folder) == 2 and [folder[i].name for i in range(2)] == stems
    for scene, sample in zip(scenes, (folder[0], folder[1])):
        np.testing.assert_array_equal(sample.rgb, scene.rgb)
        assert sample.depth.dtype == np.float32
        assert np.abs(sample.depth - scene.depth).max() <= 0.0005 + 1e-6
        mm = np.round(scene.depth.astype(np.float64) * 1000).astype(np.float32)
        np.testing.assert_array_equal(sample.depth, mm / np.float32(1000))
    (tmp_path / 'ds' / 'rgb' / 'extra.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='extra'):
        UserDepthFolder(tmp_path / 'ds')


def test_depth_png_writer_marks_invalid_and_rejects_overflow(tmp_path):
    """NaN/inf/negative depths become 0 (invalid); depths beyond uint16 mm are refused."""
    depth = np.array([[1.2345, np.nan], [-1.0, np.inf]], np.float32)
    write_depth_mm(tmp_path / 'd.png', depth)
    back = read_depth_mm(tmp_path / 'd.png')
    assert back[0, 0] == np.float32(1235) / np.float32(1000)  # float32(1.2345) > 1.2345
    assert np.count_nonzero(back) == 1
    with pytest.raises(ValueError, match='65.535'):
        write_depth_mm(tmp_path / 'e.png', np.array([[70.0]]))


def test_user_refer_round_trip_through_writer(tmp_path):
    """Each exported expression reads back with its sentence and the target's instance mask."""
    scenes = [render_scene(s, width=96, height=72) for s in (5, 6)]
    path = write_user_refer_dataset(scenes, tmp_path / 'ref', split='val')
    data = UserReferJson(path)
    expected = [(s, r) for s in scenes for r in s.expressions]
    assert len(data) == len(expected) > 0
    for i, (scene, ref) in enumerate(expected):
        sample = data[i]
        assert sample.sentence == ref.text and sample.split == 'val' and sample.ref_id == i
        np.testing.assert_array_equal(sample.mask, (scene.instances == ref.target_id)
                                      .astype(np.uint8))
        np.testing.assert_array_equal(sample.rgb, scene.rgb)


def test_user_refer_json_validates_entries(tmp_path):
    """Entries missing a field are reported with their index."""
    path = tmp_path / 'r.json'
    path.write_text(json.dumps([{'image': 'a.png', 'sentence': 'x'}]))
    with pytest.raises(ValueError, match='entry 0'):
        UserReferJson(path)
