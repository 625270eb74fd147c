# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Strict loading of checkpoints in the exact official VPD layouts (full SD-1.5 size and tiny)."""

import os
import pickle

import pytest
import torch

from official_layout import export_official
from vpd_ros.model import CheckpointMismatchError, VPDDepth, VPDRefer, get_preset
from vpd_ros.model.convert import DEPTH_PREFIXES, REFER_PREFIXES


@pytest.mark.parametrize('kind', ['depth', 'refer'])
def test_tiny_official_layout_round_trip(tmp_path, kind):
    """A tiny model written in the official layout reloads through the converter unchanged."""
    p = get_preset('tiny')
    torch.manual_seed(5)
    if kind == 'depth':
        model = VPDDepth(p['unet'], p['vae'], **p['depth']).eval()
        prefixes, kwargs = DEPTH_PREFIXES, {}
    else:
        model = VPDRefer(p['unet'], p['vae'], **p['refer']).eval()
        prefixes = REFER_PREFIXES
        kwargs = {'text_embeddings': torch.randn(1, p['refer']['token_length'], 64)}
    with torch.no_grad():
        model.backbone.gamma.fill_(0.3)
    state = export_official(kind, model, prefixes)
    assert len(state) == len(model.state_dict())
    path = str(tmp_path / 'tiny.pth')
    torch.save({'model': state}, path)
    loaded = type(model).from_official_checkpoint(path, preset='tiny')
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x, **kwargs)[0], loaded(x, **kwargs)[0])


def _tiny_refer_state(token_length):
    p = get_preset('tiny')
    model = VPDRefer(p['unet'], p['vae'], **dict(p['refer'], token_length=token_length))
    return export_official('refer', model, REFER_PREFIXES)


def test_token_length_is_read_from_the_file(tmp_path):
    """G-Ref files (L = 77) and RefCOCO files (L = 40) load with L taken from conv1_4."""
    for length in (40, 77):
        path = str(tmp_path / f'l{length}.pth')
        torch.save({'model': _tiny_refer_state(length)}, path)
        assert VPDRefer.from_official_checkpoint(path, preset='tiny').token_length == length


def test_missing_and_unexpected_official_keys_are_listed(tmp_path):
    """A dropped key and an extra key each make loading fail with the key named."""
    path = str(tmp_path / 'bad.pth')
    state = _tiny_refer_state(40)
    state.pop('classifier.bn2_2.running_var')
    torch.save({'model': state}, path)
    with pytest.raises(CheckpointMismatchError, match='classifier.bn2_2.running_var'):
        VPDRefer.from_official_checkpoint(path, preset='tiny')
    state = _tiny_refer_state(40)
    state['classifier.extra.weight'] = torch.zeros(1)
    torch.save({'model': state}, path)
    with pytest.raises(CheckpointMismatchError, match='classifier.extra.weight'):
        VPDRefer.from_official_checkpoint(path, preset='tiny')
    state = _tiny_refer_state(40)
    state['unet.unet.diffusion_model.input_blocks.1.1.unknown.weight'] = torch.zeros(1)
    torch.save({'model': state}, path)
    with pytest.raises(CheckpointMismatchError, match='unknown.weight'):
        VPDRefer.from_official_checkpoint(path, preset='tiny')


def test_missing_file_says_what_and_where(tmp_path):
    """A missing checkpoint names the file and where to download it."""
    with pytest.raises(FileNotFoundError, match='vpd_depth_480x480.pth.*Tsinghua'):
        VPDDepth.from_official_checkpoint(str(tmp_path / 'vpd_depth_480x480.pth'))
    with pytest.raises(FileNotFoundError, match='vpd_ris_refcoco'):
        VPDRefer.from_official_checkpoint(str(tmp_path / 'x.pth'))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickle_carrying_code_is_refused_and_never_runs(tmp_path):
    """A checkpoint whose pickle would create a file is rejected before any of its code runs."""
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'model': {'gamma': _Payload(str(marker))}}, f)
    with pytest.raises(pickle.UnpicklingError):
        VPDRefer.from_official_checkpoint(str(path), preset='tiny')
    assert not os.path.exists(marker)
