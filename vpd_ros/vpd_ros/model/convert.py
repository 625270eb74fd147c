# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Load the official VPD checkpoints and SD-1.5 weights into vpd_ros models, offline and strictly.

Official layouts (``vpd_depth_480x480.pth``, ``vpd_ris_*.pth``): ldm-named UNet and VAE tensors
under ``[encoder.]unet.unet.diffusion_model.`` and ``[encoder.]encoder_vq.``; they are renamed with
diffusers' single-file helpers, and every tensor must land somewhere: the helpers skip what they do
not know, so the tensor counts are compared before the strict key check.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint,
                                                 convert_ldm_unet_checkpoint,
                                                 convert_ldm_vae_checkpoint)
from safetensors.torch import load_file

from .pretrained import CheckpointMismatchError

StateDict = Dict[str, torch.Tensor]

WHERE_TO_GET = {
    'depth': 'vpd_depth_480x480.pth: the Tsinghua Cloud link in the depth/README.md of '
             'github.com/wl-zhao/VPD',
    'refer': 'vpd_ris_refcoco.pth / vpd_ris_refcoco+.pth / vpd_ris_gref.pth: the Tsinghua Cloud '
             'links in the refer/README.md of github.com/wl-zhao/VPD',
    'evp_depth': 'best_model_nyu.ckpt (EVP, NYUv2): the files of the Hugging Face Space '
                 'MykolaL/evp (named in app.py of github.com/Lavreniuk/EVP)',
    'evp_refer': 'best_model_refcoco.pth (EVP, RefCOCO): the files of the Hugging Face Space '
                 'MykolaL/evp (named in app.py of github.com/Lavreniuk/EVP)',
    'sd15': 'Stable Diffusion 1.5: a diffusers folder (unet/ vae/ text_encoder/) or '
            'v1-5-pruned-emaonly.safetensors, from the stable-diffusion-v1-5 model card',
}

# official prefix -> our prefix; '' sections are converted by the diffusers helpers.
DEPTH_PREFIXES: List[Tuple[str, str]] = [
    ('encoder.unet.unet.diffusion_model.', 'unet'), ('encoder.encoder_vq.', 'vae'),
    ('encoder.gamma', 'backbone.gamma'), ('encoder.text_adapter.', 'backbone.text_adapter.'),
    ('encoder.class_embeddings', 'class_embeddings'), ('encoder.layer1.', 'neck.layer1.'),
    ('encoder.layer2.', 'neck.layer2.'), ('encoder.out_layer.', 'neck.out_layer.'),
    ('decoder.', 'decoder.'), ('last_layer_depth.', 'last_layer_depth.'),
]
REFER_PREFIXES: List[Tuple[str, str]] = [
    ('unet.unet.diffusion_model.', 'unet'), ('encoder_vq.', 'vae'),
    ('gamma', 'backbone.gamma'), ('text_adapter.', 'backbone.text_adapter.'),
    ('classifier.', 'classifier.'),
]

# EVP: the VPD families plus IMAFR (``aggregation``), the CLIP tower and the bins head; the depth
# decoder holds ``last_layer_depth`` (listed before ``decoder.`` so it matches first); CLIP keys
# lose ``text_model.`` (transformers 5 CLIPTextModel is flat).
EVP_DEPTH_PREFIXES: List[Tuple[str, str]] = [
    ('encoder.unet.unet.diffusion_model.', 'unet'), ('encoder.encoder_vq.', 'vae'),
    ('encoder.gamma', 'backbone.gamma'), ('encoder.text_adapter.', 'backbone.text_adapter.'),
    ('encoder.clip_model.transformer.text_model.', 'text_encoder.'),
    ('encoder.aggregation.', 'aggregation.'), ('encoder.layer1.', 'neck.layer1.'),
    ('encoder.layer2.', 'neck.layer2.'), ('encoder.out_layer.', 'neck.out_layer.'),
    ('decoder.last_layer_depth.', 'last_layer_depth.'), ('decoder.', 'decoder.'),
] + [(name, 'bins.' + name) for name in (
    'bottle_neck.', 'seed_bin_regressor.', 'seed_projector.', 'projectors.', 'attractors.',
    'conditional_log_binomial.')]
EVP_REFER_PREFIXES: List[Tuple[str, str]] = REFER_PREFIXES + [
    ('clip_model.text_model.', 'text_encoder.'), ('aggregation.', 'aggregation.')]


def require_file(path: str, what: str) -> None:
    """Raise FileNotFoundError naming the file and where users get it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f'{path} not found. Needed: {WHERE_TO_GET[what]}')


def load_torch_file(path: str) -> StateDict:
    """Read a .pth/.ckpt/.bin with ``torch.load(weights_only=True)`` or a .safetensors file.

    ``argparse.Namespace`` (the ``args`` the official refer training saves) is the only non-tensor
    class allowed; a pickle asking for anything else (code) is refused by torch's safe unpickler.
    """
    if path.endswith('.safetensors'):
        return load_file(path)
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except RuntimeError as err:
            if 'zip' not in str(err).lower():
                raise
            # Legacy (non-zip) torch files cannot be memory-mapped.
            return torch.load(path, map_location='cpu', weights_only=True)


def unwrap_state_dict(obj: Any, path: str) -> StateDict:
    """Return a checkpoint's tensor dict (``model``/``state_dict`` entry, ``module.`` removed)."""
    if isinstance(obj, Mapping):
        for key in ('model', 'state_dict'):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointMismatchError(f'{path} holds no tensor state dict (expected a dict of '
                                      "tensors, possibly under 'model' or 'state_dict')")
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in obj.items()}


def _convert_unet(ldm: StateDict, config: Mapping[str, Any], source: str) -> StateDict:
    prefixed = {'model.diffusion_model.' + k: v for k, v in ldm.items()}
    out = convert_ldm_unet_checkpoint(prefixed, dict(config))
    if len(out) != len(ldm):
        raise CheckpointMismatchError(
            f'{source}: {len(ldm)} UNet tensors but only {len(out)} have a diffusers name; the '
            'file is not an SD-1.x UNet of this configuration')
    return out


def _convert_vae(ldm: StateDict, config: Mapping[str, Any], source: str) -> StateDict:
    prefixed = {'first_stage_model.' + k: v for k, v in ldm.items()}
    out = convert_ldm_vae_checkpoint(prefixed, dict(config))
    if len(out) != len(ldm):
        raise CheckpointMismatchError(
            f'{source}: {len(ldm)} VAE tensors but only {len(out)} have a diffusers name')
    return out


def convert_official(state: StateDict, prefixes: Iterable[Tuple[str, str]],
                     unet_config: Mapping[str, Any], vae_config: Mapping[str, Any],
                     source: str) -> StateDict:
    """Rename an official VPD state dict to vpd_ros names; unknown keys are an error."""
    sections: Dict[str, StateDict] = {'unet': {}, 'vae': {}}
    out: StateDict = {}
    unknown = []
    for key, value in state.items():
        for old, new in prefixes:
            if key == old or (old.endswith('.') and key.startswith(old)):
                if new in sections:
                    sections[new][key[len(old):]] = value
                else:
                    out[new + key[len(old):]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointMismatchError(f'{source}: {len(unknown)} keys outside the official '
                                      f'layout: {", ".join(sorted(unknown)[:20])}')
    for key, value in _convert_unet(sections['unet'], unet_config, source).items():
        out['backbone.unet.' + key] = value
    for key, value in _convert_vae(sections['vae'], vae_config, source).items():
        out['backbone.vae.' + key] = value
    return out


def refer_token_length(state: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> int:
    """Recover the token length L from ``classifier.conv1_4`` (in = c2 + c3 + L)."""
    key = 'classifier.conv1_4.weight'
    if key not in state:
        raise CheckpointMismatchError(f'no {key}: not a VPD referring checkpoint')
    c = unet_config['block_out_channels']
    return int(state[key].shape[1]) - c[2] - c[3]


# --- SD-1.5 -------------------------------------------------------------------------------------

def _read_component(folder: str, names: Iterable[str]) -> StateDict:
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return load_torch_file(path)
    raise FileNotFoundError(f'none of {list(names)} in {folder}. Needed: {WHERE_TO_GET["sd15"]}')


def load_sd15_state(path: str, unet_config: Mapping[str, Any],
                    vae_config: Mapping[str, Any]) -> Dict[str, StateDict]:
    """Read SD-1.5 as diffusers-named ``unet``, ``vae`` and ``text`` state dicts.

    ``path`` is a diffusers folder (``unet/``, ``vae/``, ``text_encoder/``) or a single ldm file
    (.safetensors or .ckpt). Nothing is downloaded.
    """
    require_file(path, 'sd15')
    weights = ('diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.bin',
               'model.safetensors', 'pytorch_model.bin')
    if os.path.isdir(path):
        return {'unet': _read_component(os.path.join(path, 'unet'), weights),
                'vae': _read_component(os.path.join(path, 'vae'), weights),
                'text': _read_component(os.path.join(path, 'text_encoder'), weights)}
    ckpt = unwrap_state_dict(load_torch_file(path), path)
    unet_ldm = {k[len('model.diffusion_model.'):]: v for k, v in ckpt.items()
                if k.startswith('model.diffusion_model.')}
    vae_ldm = {k[len('first_stage_model.'):]: v for k, v in ckpt.items()
               if k.startswith('first_stage_model.')}
    if not unet_ldm or not vae_ldm:
        raise CheckpointMismatchError(f'{path} has no model.diffusion_model./first_stage_model. '
                                      'tensors: not an SD-1.x single-file checkpoint')
    return {'unet': _convert_unet(unet_ldm, unet_config, path),
            'vae': _convert_vae(vae_ldm, vae_config, path),
            'text': convert_ldm_clip_checkpoint(ckpt)}


def text_state(state: StateDict) -> StateDict:
    """Drop the non-persistent ``position_ids`` buffer some CLIP exports carry."""
    return {k: v for k, v in state.items() if not k.endswith('embeddings.position_ids')}


def backbone_state_from_sd15(sd: Dict[str, StateDict], keep_unet_output_head: bool,
                             text_prefix: Optional[str]) -> StateDict:
    """Map SD-1.5 component weights onto vpd_ros backbone names (VAE decoder dropped)."""
    out: StateDict = {}
    for key, value in sd['unet'].items():
        if keep_unet_output_head or not key.startswith(('conv_norm_out.', 'conv_out.')):
            out['backbone.unet.' + key] = value
    for key, value in sd['vae'].items():
        if not key.startswith('decoder.'):
            out['backbone.vae.' + key] = value
    if text_prefix is not None:
        for key, value in text_state(sd['text']).items():
            out[text_prefix + key] = value
    return out
