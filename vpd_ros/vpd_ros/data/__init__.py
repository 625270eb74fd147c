# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training and evaluation data: procedural RGB-D scenes, referring expressions, dataset readers.

Pure numpy + OpenCV (no ROS); readers are map-style sequences usable as torch datasets. The
torch training datasets built on them (scene cache, augmentation, batches) are in
:mod:`vpd_ros.data.datasets`, imported on demand so that this package loads no torch.
"""

from vpd_ros.data.expressions import Referral, generate_expressions
from vpd_ros.data.readers import (
    DepthSample,
    NyuDepthSplit,
    NyuSample,
    RefCocoSplit,
    ReferSample,
    RestrictedUnpickler,
    UserDepthFolder,
    UserReferJson,
    coco_segmentation_to_mask,
    decode_rle_string,
    load_refs,
    nyu_scene_name,
    read_depth_mm,
    read_rgb,
    save_refs_json,
    write_depth_mm,
    write_user_depth_dataset,
    write_user_refer_dataset,
)
from vpd_ros.data.scenes import (
    HELDOUT_SEEDS_START,
    TRAIN_SEEDS_START,
    TRAIN_SEEDS_STOP,
    ObjectInfo,
    Scene,
    SceneDataset,
    iter_scenes,
    render_scene,
)

__all__ = [
    'HELDOUT_SEEDS_START',
    'TRAIN_SEEDS_START',
    'TRAIN_SEEDS_STOP',
    'DepthSample',
    'NyuDepthSplit',
    'NyuSample',
    'ObjectInfo',
    'RefCocoSplit',
    'ReferSample',
    'Referral',
    'RestrictedUnpickler',
    'Scene',
    'SceneDataset',
    'UserDepthFolder',
    'UserReferJson',
    'coco_segmentation_to_mask',
    'decode_rle_string',
    'generate_expressions',
    'iter_scenes',
    'load_refs',
    'nyu_scene_name',
    'read_depth_mm',
    'read_rgb',
    'render_scene',
    'save_refs_json',
    'write_depth_mm',
    'write_user_depth_dataset',
    'write_user_refer_dataset',
]
