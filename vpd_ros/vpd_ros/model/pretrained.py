# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Strict, safe save/load for VPD models: ``config.json`` + ``model.safetensors`` per model folder.

diffusers' own ``from_pretrained`` only warns about missing or unexpected keys; VPD models refuse
them and list them, so a checkpoint that does not fit is an error, never a silently random layer.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterable, Mapping, Optional, Type, TypeVar

import torch
from safetensors.torch import load_file, save_file

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'

T = TypeVar('T', bound='PretrainedMixin')


class CheckpointMismatchError(ValueError):
    """A state dict that does not match the model's keys or shapes exactly."""


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor],
                     source: str, ignore_prefixes: Iterable[str] = ()) -> None:
    """Raise :class:`CheckpointMismatchError` listing missing, unexpected and mis-shaped keys."""
    ignore = tuple(ignore_prefixes)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(ignore)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
                    for k, v in expected.items() if k in state and state[k].shape != v.shape)
    if missing or unexpected or shapes:
        def show(name: str, keys: list) -> str:
            more = f' ... (+{len(keys) - 20} more)' if len(keys) > 20 else ''
            head = ', '.join(keys[:20]) + more
            return f'\n  {len(keys)} {name}: {head}' if keys else ''
        raise CheckpointMismatchError(
            f'{source} does not fit {type(model).__name__}:' + show('missing keys', missing)
            + show('unexpected keys', unexpected) + show('shape mismatches', shapes))


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str,
                ignore_prefixes: Iterable[str] = (), assign: bool = False) -> None:
    """Check ``state`` against ``model`` and load it.

    With ``assign`` the model may have been built on the meta device: its tensors become the
    checkpoint's (no random init, no copy), and any tensor left on meta is an error.
    """
    ignore = tuple(ignore_prefixes)
    check_state_dict(model, state, source, ignore)
    model.load_state_dict(dict(state), strict=not ignore, assign=assign)
    if assign:
        left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
                if t.is_meta]
        if left:
            raise CheckpointMismatchError(f'{source}: tensors left unset: {", ".join(left[:20])}')


def saved_class_name(folder: str) -> Optional[str]:
    """Return the model class a ``save_pretrained`` folder was written by (its ``_class_name``).

    ``None`` when ``config.json`` is missing or names no class; ``from_pretrained`` then says
    what is missing.
    """
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f).get('_class_name')


class PretrainedMixin:
    """Strict, pickle-free ``save_pretrained``/``from_pretrained``; list it before ``ModelMixin``.

    The model class must also derive from diffusers ``ModelMixin`` and ``ConfigMixin`` (in that
    order after this mixin) so that ``save_config``/``from_config`` and module lookup work.
    """

    config_name = CONFIG_NAME

    def save_pretrained(self, folder: str, dtype: Optional[torch.dtype] = None) -> None:
        """Write the config and the weights (optionally cast, e.g. fp16 for shipping)."""
        os.makedirs(folder, exist_ok=True)
        self.save_config(folder)
        state: Dict[str, torch.Tensor] = {}
        for key, value in self.state_dict().items():
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            state[key] = value.detach().cpu().contiguous()
        save_file(state, os.path.join(folder, WEIGHTS_NAME), metadata={'format': 'pt'})

    @classmethod
    def from_pretrained(cls: Type[T], folder: str) -> T:
        """Build the model from ``folder/config.json`` and load ``model.safetensors`` strictly."""
        weights = os.path.join(folder, WEIGHTS_NAME)
        for path in (os.path.join(folder, CONFIG_NAME), weights):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f'{path} not found: a {cls.__name__} folder holds {CONFIG_NAME} and '
                    f'{WEIGHTS_NAME} (written by save_pretrained)')
        with open(os.path.join(folder, CONFIG_NAME), encoding='utf-8') as f:
            config = json.load(f)
        model = cls.from_config(config)
        try:
            state = load_file(weights)
        except Exception as error:  # safetensors raises its own error type without the path
            raise CheckpointMismatchError(f'{weights} is not a readable safetensors file '
                                          f'(truncated or corrupt?): {error}') from error
        load_strict(model, state, weights)
        return model.eval()
