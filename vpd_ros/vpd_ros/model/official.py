# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tell the released VPD and EVP checkpoints apart by their content and load the right model.

File names are not trusted (users rename files); each layout has keys only it holds.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Tuple

from .convert import WHERE_TO_GET, StateDict, load_torch_file, unwrap_state_dict
from .depth import VPDDepth
from .evp_depth import EVPDepth
from .evp_refer import EVPRefer
from .presets import PRESETS, get_preset
from .pretrained import CheckpointMismatchError
from .refer import VPDRefer

# kind -> (a key only that layout holds, model class, task)
KINDS: Dict[str, Tuple[str, Any, str]] = {
    'evp_depth': ('encoder.aggregation.layer1.conv1.weight', EVPDepth, 'depth'),
    'evp_refer': ('aggregation.layer1.conv1.weight', EVPRefer, 'refer'),
    'vpd_depth': ('last_layer_depth.0.weight', VPDDepth, 'depth'),
    'vpd_refer': ('classifier.conv1_4.weight', VPDRefer, 'refer'),
}

#: The ldm key suffix of the UNet's first convolution (every VPD and EVP file holds it).
UNET_CONV_IN = 'diffusion_model.input_blocks.0.0.weight'


def classify_state(state: Mapping[str, Any], source: str) -> str:
    """Return ``evp_depth``, ``evp_refer``, ``vpd_depth`` or ``vpd_refer`` for a state dict."""
    for kind, (marker, _cls, _task) in KINDS.items():
        if marker in state:
            return kind
    sample = ', '.join(sorted(state)[:5])
    raise CheckpointMismatchError(
        f'{source}: not a VPD or EVP checkpoint this package knows (none of '
        f'{", ".join(m for m, _c, _t in KINDS.values())}; first keys: {sample})')


def preset_of_state(state: Mapping[str, Any], source: str) -> str:
    """Return the preset whose UNet width the file's first UNet convolution has (320: sd15)."""
    widths = {get_preset(name)['unet']['block_out_channels'][0]: name for name in PRESETS}
    for key, tensor in state.items():
        if key.endswith(UNET_CONV_IN):
            if int(tensor.shape[0]) in widths:
                return widths[int(tensor.shape[0])]
            raise CheckpointMismatchError(
                f'{source}: UNet width {tensor.shape[0]} matches no preset '
                f'({", ".join(f"{w}: {n}" for w, n in widths.items())})')
    raise CheckpointMismatchError(f'{source}: no UNet ({UNET_CONV_IN}) in the file')


def read_checkpoint(path: str) -> StateDict:
    """Read ``path`` safely (weights_only / safetensors, memory-mapped) as a tensor dict."""
    if not os.path.exists(path):
        raise FileNotFoundError(f'{path} not found. Official checkpoints: ' + '; '.join(
            WHERE_TO_GET[k] for k in ('depth', 'refer', 'evp_depth', 'evp_refer')))
    return unwrap_state_dict(load_torch_file(path), path)


def classify_checkpoint(path: str) -> str:
    """Read ``path`` safely (weights_only / safetensors) and return its kind (see KINDS)."""
    return classify_state(read_checkpoint(path), path)


def load_official_checkpoint(path: str, task: str, preset: Optional[str] = None,
                             **options: Any) -> Tuple[str, Any]:
    """Load an official VPD or EVP file for ``task`` (``depth``/``refer``); return (kind, model).

    The kind and, unless ``preset`` is given, the sizes (``sd15`` for the released files) are
    read from the file's content. ``options`` go to VPD's referring loader (``text_encoder``);
    EVP models carry their own.
    """
    state = read_checkpoint(path)
    kind = classify_state(state, path)
    preset = preset or preset_of_state(state, path)
    del state
    _marker, cls, holds = KINDS[kind]
    if holds != task:
        raise CheckpointMismatchError(f'{path} is a {kind} checkpoint, given for {task}')
    if kind == 'vpd_refer':
        return kind, cls.from_official_checkpoint(path, preset=preset, **options)
    return kind, cls.from_official_checkpoint(path, preset=preset)
