# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""EVP models: official-layout loading, token ids and the head formulas the specification states."""

import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from official_layout import export_official, official_keys, random_official_state
from vpd_ros.model import (CheckpointMismatchError, EVPDepth, EVPRefer, VPDDepth, VPDRefer,
                           get_preset)
from vpd_ros.model.bins import InverseAttractor, LogBinomial, log_binomial_coefficient
from vpd_ros.model.evp_depth import load_caption_embedding
from vpd_ros.model.convert import (DEPTH_PREFIXES, EVP_DEPTH_PREFIXES, EVP_REFER_PREFIXES,
                                   REFER_PREFIXES)
from vpd_ros.model.imafr import AttentionDownsamplingModule, group_count
from vpd_ros.model.official import classify_checkpoint, load_official_checkpoint
from vpd_ros.engine.tta import shift_window_flip
from test_official_checkpoints import fingerprints

CLASSES = {'evp_depth': EVPDepth, 'evp_refer': EVPRefer}
PREFIXES = {'evp_depth': EVP_DEPTH_PREFIXES, 'evp_refer': EVP_REFER_PREFIXES}


def tiny(kind, **overrides):
    """A tiny EVP model with seeded random weights (eval mode)."""
    p = get_preset('tiny')
    torch.manual_seed(3)
    return CLASSES[kind](p['unet'], p['vae'], p['text'], **dict(p[kind], **overrides)).eval()


def refer_extras():
    """What the official referring training saves next to the weights (train.py)."""
    weight = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([weight], lr=8e-5)
    weight.sum().backward()
    opt.step()  # the saved optimizer state holds moments and a step count
    return {'optimizer': opt.state_dict(), 'epoch': 19, 'lr_scheduler': {'t_initial': 20},
            'args': argparse.Namespace(token_length=40, dataset='refcoco', lr=8e-5)}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 4.3 GB written, read and summed: minutes on busy cores
@pytest.mark.parametrize('kind', ['evp_depth', 'evp_refer'])
def test_full_size_official_layout_loads_strictly(tmp_path, kind):
    """Every tensor of an official-layout EVP file lands in the model exactly once."""
    state = random_official_state(kind, seed=2)
    path = str(tmp_path / f'{kind}.pth')
    extra = refer_extras() if kind == 'evp_refer' else {}
    torch.save({'model': state, **extra}, path)
    model = CLASSES[kind].from_official_checkpoint(path)
    ours = model.state_dict()
    assert not any(t.is_meta for t in ours.values())
    assert len(ours) == len(official_keys(kind)) == len(state)
    assert fingerprints(ours) == fingerprints(state)
    prefix = 'encoder.' if kind == 'evp_depth' else ''
    clip = 'encoder.clip_model.transformer.' if kind == 'evp_depth' else 'clip_model.'
    same = {
        prefix + 'aggregation.layer3.conv1.0.weight': 'aggregation.layer3.conv1.0.weight',
        prefix + 'aggregation.layer6.group_norm.bias': 'aggregation.layer6.group_norm.bias',
        clip + 'text_model.encoder.layers.11.mlp.fc2.weight':
            'text_encoder.encoder.layers.11.mlp.fc2.weight',
        prefix + 'unet.unet.diffusion_model.output_blocks.4.1.proj_in.weight':
            'backbone.unet.up_blocks.1.attentions.1.proj_in.weight',
    }
    if kind == 'evp_depth':
        same.update({'decoder.last_layer_depth.2.weight': 'last_layer_depth.2.weight',
                     'attractors.0._net.2.weight': 'bins.attractors.0._net.2.weight',
                     'encoder.layer2.0.weight': 'neck.layer2.0.weight'})
        assert model.backbone.vae.post_quant_conv is None
        assert model.backbone.latent_divisor == pytest.approx(5.07543)
    else:
        same['classifier.conv1_4.weight'] = 'classifier.conv1_4.weight'
        assert model.backbone.latent_divisor == pytest.approx(4.7164)
    for official, mine in same.items():
        assert torch.equal(state[official], ours[mine]), official
    assert model.token_length == 40
    assert tuple(ours['aggregation.layer3.conv1.0.weight'].shape) == (680, 840, 1, 1)


@pytest.mark.parametrize('kind', ['evp_depth', 'evp_refer'])
def test_tiny_official_layout_round_trip(tmp_path, kind):
    """A tiny EVP model written in the official layout reloads unchanged and predicts the same."""
    model = tiny(kind)
    state = export_official(kind, model, PREFIXES[kind])
    assert len(state) == len(model.state_dict())
    path = str(tmp_path / 'tiny.pth')
    torch.save({'model': state, **(refer_extras() if kind == 'evp_refer' else {})}, path)
    loaded = CLASSES[kind].from_official_checkpoint(path, preset='tiny')
    loaded.save_pretrained(str(tmp_path / 'saved'))
    again = CLASSES[kind].from_pretrained(str(tmp_path / 'saved'))
    x = torch.rand(1, 3, 64, 96)
    ids = model.tokenize(['a kitchen with a table'])
    with torch.no_grad():
        expected = model(x, token_ids=ids)[0]
        assert torch.equal(expected, loaded(x, token_ids=ids)[0])
        assert torch.equal(expected, again(x, token_ids=ids)[0])


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    """A dropped, an extra and a mis-shaped key each make loading fail naming that key."""
    model = tiny('evp_depth')
    path = str(tmp_path / 'bad.pth')
    cases = {'drop': 'attractors.2._net.0.bias', 'add': 'attractors.9._net.0.bias',
             'shape': 'encoder.aggregation.layer4.group_norm.weight'}
    for case, key in cases.items():
        state = export_official('evp_depth', model, EVP_DEPTH_PREFIXES)
        if case == 'drop':
            state.pop(key)
        elif case == 'add':
            state[key] = torch.zeros(1)
        else:
            state[key] = torch.zeros(state[key].numel() + 1)
        torch.save({'model': state}, path)
        with pytest.raises(CheckpointMismatchError, match=key.replace('encoder.', '')):
            EVPDepth.from_official_checkpoint(path, preset='tiny')


def test_outputs_follow_the_forward_contract():
    """Depth in metres and 2-class logits at the input size; ids or CLIP states as text."""
    depth, refer = tiny('evp_depth'), tiny('evp_refer')
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        ids = depth.tokenize(['a bedroom', 'an office'])
        d = depth(x, token_ids=ids).depth
        states = depth.text_encoder(input_ids=ids[:1]).last_hidden_state
        d_one = depth(x, text_embeddings=states).depth
        logits = refer(x, token_ids=refer.tokenize(['the cup', 'the man on the left'])).logits
    assert d.shape == (2, 1, 64, 96) and logits.shape == (2, 2, 64, 96)
    assert torch.isfinite(d).all() and (d >= 0).all()
    assert torch.allclose(d_one[0], d[0], atol=1e-5)
    assert not torch.allclose(d_one[1], d[1], atol=1e-5)
    with pytest.raises(ValueError, match='exactly one'):
        depth(x)
    with pytest.raises(ValueError, match=r'\(B, 8\)'):
        depth(x, token_ids=torch.zeros(2, 40, dtype=torch.long))


def test_77_tokens_work_where_the_official_widths_break():
    """L = 77 builds IMAFR widths from L (717, 1357 at SD-1.5 size) and runs (tiny)."""
    p = get_preset('sd15')
    with torch.device('meta'):
        model = EVPRefer(p['unet'], p['vae'], p['text'], **dict(p['evp_refer'], token_length=77))
    agg = model.aggregation
    assert agg.layer3.conv1[0].weight.shape == (717, 160 + 717, 1, 1)
    assert agg.layer4.conv1.weight.shape == (358, 717, 3, 3)
    assert agg.layer5.conv1[0].weight.shape == (1357, 358 + 1357, 1, 1)
    assert model.classifier.conv1_4.weight.shape[1] == 1357 + 1280
    assert agg.layer3.conv1[1].num_groups == group_count(717, 20) == 3
    assert agg.layer2.group_norm.num_groups == 20  # widths divisible by 20 keep the official 20
    refer = tiny('evp_refer', token_length=77)
    with torch.no_grad():
        ids = refer.tokenize(['the red mug ' * 30])
        assert ids.shape == (1, 77)
        assert torch.isfinite(refer(torch.rand(1, 3, 64, 64), token_ids=ids).logits).all()


def test_token_ids_match_the_official_tokenisation():
    """CLIP ids padded to L with <|endoftext|> (49407), truncated keeping BOS and EOS."""
    depth = tiny('evp_depth', token_length=40)
    ids = depth.tokenize(['a photo of a cat', 'word ' * 60])
    assert ids.dtype == torch.int64 and ids.shape == (2, 40)
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert (ids[0, 7:] == 49407).all()
    assert ids[1, 0] == 49406 and ids[1, -1] == 49407
    assert len(set(ids[1, 1:-1].tolist())) == 1 and ids[1, 1] != 49407


def test_log_binomial_matches_the_stirling_formula():
    """LogBinomial = softmax_k((logC(K-1,k) + k ln p + (K-1-k) ln(1-p)) / T), Stirling logC."""
    module = LogBinomial(64)
    p = torch.tensor([0.0, 0.3, 0.97, 1.0]).view(4, 1, 1, 1)
    t = torch.tensor([0.0212, 1.0, 7.5, 50.0]).view(4, 1, 1, 1)
    got = module(p, t).double()
    for i in range(4):
        pi = min(max(float(p[i]), 1e-4), 1.0)
        qi = min(max(1 - float(p[i]), 1e-4), 1.0)
        n = 63 + 1e-7
        y = []
        for k in range(64):
            kk = k + 1e-7
            logc = n * math.log(n) - kk * math.log(kk) - (n - kk) * math.log(n - kk + 1e-7)
            y.append((logc + k * math.log(pi) + (63 - k) * math.log(qi)) / float(t[i]))
        ref = torch.softmax(torch.tensor(y, dtype=torch.float64), 0)
        assert torch.allclose(got[i, :, 0, 0], ref, rtol=1e-4, atol=1e-6), i
    # Stirling form, not the exact log-binomial: it differs from lgamma by a k-dependent term.
    k = torch.arange(64.0)
    exact = math.lgamma(64) - torch.lgamma(k + 1) - torch.lgamma(64 - k)
    assert (log_binomial_coefficient(torch.tensor(63.0), k) - exact).abs().max() > 0.5


def test_inverse_attractor_update():
    """c_new = c + mean_a (A_a - c) / (1 + 300 (A_a - c)^2), centres resized align_corners."""
    torch.manual_seed(0)
    layer = InverseAttractor(8, n_attractors=3)
    emb, prev = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)
    centres = torch.rand(1, 5, 2, 2) * 5
    got = layer(emb, prev, centres).double()
    z = emb + F.interpolate(prev, size=(4, 4), mode='bilinear', align_corners=True)
    a = layer._net(z).double()  # (1, 3, 4, 4) attractor points
    c = F.interpolate(centres, size=(4, 4), mode='bilinear', align_corners=True).double()
    ref = c.clone()
    for b in range(5):
        shift = sum((a[:, j] - c[:, b]) / (1 + 300.0 * (a[:, j] - c[:, b]) ** 2)
                    for j in range(3)) / 3
        ref[:, b] = c[:, b] + shift
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_downsampling_block_shares_one_groupnorm():
    """Both convolutions of the downsampling block are normalised by the same GroupNorm."""
    torch.manual_seed(1)
    block = AttentionDownsamplingModule(40, groups=20).eval()
    with torch.no_grad():
        block.group_norm.weight.uniform_(0.5, 2.0)
        block.group_norm.bias.uniform_(-1.0, 1.0)
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in block.modules()) == 1
    x = torch.randn(2, 40, 8, 8)
    gn = block.group_norm
    g = x * torch.sigmoid(block.spatial_attention[0](x))
    se = block.channel_attention
    g = g * torch.sigmoid(se[3](torch.relu(se[1](g.mean((2, 3), keepdim=True)))))
    h = torch.relu(F.group_norm(block.conv1(g), 20, gn.weight, gn.bias, 1e-5))
    ref = torch.relu(F.group_norm(block.conv2(h), 20, gn.weight, gn.bias, 1e-5))
    with torch.no_grad():
        got = block(x)
    assert got.shape == (2, 20, 4, 4)
    assert torch.allclose(got, ref.detach(), atol=1e-5)


def test_official_window_spacing_fills_the_right_edge():
    """EVP's 8 windows at x = 0, 22, ..., 154 on 640 px; columns 634-639 copy column 633."""
    starts = []

    def predict(batch):
        starts.append(batch.shape[0])
        return batch[:, :1].clone()

    image = torch.arange(640.0).view(1, 1, 1, 640).expand(1, 3, 480, 640).contiguous()
    out = shift_window_flip(predict, image, shift_size=8, official_spacing=True)
    assert starts == [16] and torch.isfinite(out).all()
    assert torch.equal(out[..., :634], image[:, :1, :, :634])
    assert (out[..., 634:] == 633.0).all()


def test_checkpoints_are_told_apart_by_content(tmp_path):
    """VPD and EVP files of both tasks are classified by their keys, whatever their names."""
    p = get_preset('tiny')
    torch.manual_seed(4)
    models = {'evp_depth': (tiny('evp_depth'), EVP_DEPTH_PREFIXES, 'depth'),
              'evp_refer': (tiny('evp_refer'), EVP_REFER_PREFIXES, 'refer'),
              'vpd_depth': (VPDDepth(p['unet'], p['vae'], **p['depth']), DEPTH_PREFIXES, 'depth'),
              'vpd_refer': (VPDRefer(p['unet'], p['vae'], **p['refer']), REFER_PREFIXES, 'refer')}
    for kind, (model, prefixes, task) in models.items():
        path = str(tmp_path / f'renamed_{kind}.bin')
        torch.save({'model': export_official(kind.replace('vpd_', ''), model, prefixes)}, path)
        assert classify_checkpoint(path) == kind
        loaded_kind, loaded = load_official_checkpoint(path, task, preset='tiny')
        assert loaded_kind == kind and type(loaded) is type(model)
        other = 'refer' if task == 'depth' else 'depth'
        with pytest.raises(CheckpointMismatchError, match=f'{kind} checkpoint, given for {other}'):
            load_official_checkpoint(path, other, preset='tiny')
    path = str(tmp_path / 'other.pth')
    torch.save({'model': {'backbone.weight': torch.zeros(2)}}, path)
    with pytest.raises(CheckpointMismatchError, match='other.pth: not a VPD or EVP checkpoint'):
        classify_checkpoint(path)


def test_aggregated_caption_embedding_file(tmp_path):
    """EVP's captions dict (with 'aggregated') or a bare tensor conditions every image."""
    depth = tiny('evp_depth')
    with torch.no_grad():
        states = depth.encode_text(['a living room']).embeddings
        path = str(tmp_path / 'nyu_class_embeddings_my_captions.pth')
        torch.save({'aggregated': states, 'nyu_depth_v2/sync/kitchen_0001/rgb_00001.jpg':
                    {'caption': ['a kitchen'], 'class_embeddings': torch.zeros(64)}}, path)
        loaded = load_caption_embedding(path)
        assert torch.equal(loaded, states)
        x = torch.rand(2, 3, 64, 64)
        by_file = depth(x, text_embeddings=loaded).depth
        by_ids = depth(x, token_ids=depth.tokenize(['a living room'] * 2)).depth
    assert torch.allclose(by_file, by_ids, atol=1e-5)
    bad = str(tmp_path / 'bad.pth')
    torch.save({'captions': ['x']}, bad)
    with pytest.raises(ValueError, match="'aggregated'"):
        load_caption_embedding(bad)


def test_depth_is_not_clamped_to_max_depth():
    """Bin centres are softplus metres: far bins give depth beyond max_depth, as officially."""
    depth = tiny('evp_depth')
    with torch.no_grad():
        depth.bins.seed_bin_regressor._net[2].bias.fill_(40.0)
        d = depth(torch.rand(1, 3, 64, 64), token_ids=depth.tokenize(['a hall'])).depth
    assert depth.config.max_depth == 10.0
    assert d.min() > 20.0


def test_engine_runs_official_evp_files(tmp_path):
    """The engine loads EVP files by content and runs depth (caption, TTA) and referring."""
    from vpd_ros.engine import EngineConfig, VPDEngine
    paths = {}
    for kind in ('evp_depth', 'evp_refer'):
        paths[kind] = str(tmp_path / f'{kind}.pth')
        torch.save({'model': export_official(kind, tiny(kind), PREFIXES[kind])}, paths[kind])
    frame = (torch.rand(48, 80, 3) * 255).to(torch.uint8).numpy()
    engine = VPDEngine.from_official(paths['evp_depth'], paths['evp_refer'], preset='tiny',
                                     config=EngineConfig(input_size=(64, 96)))
    assert isinstance(engine.depth, EVPDepth) and isinstance(engine.refer, EVPRefer)
    assert engine.takes_caption
    assert not engine.shared_vae  # different latent divisors: each model encodes the frame
    first = engine.predict(frame, ['the red mug'])
    assert first.depth.shape == (48, 80) and first.masks.shape == (1, 48, 80)
    engine.set_caption('a long corridor with doors')
    assert not np.array_equal(engine.predict(frame).depth, first.depth)
    with pytest.raises(ValueError, match='non-empty'):
        engine.set_caption(' ')
    tta = VPDEngine.from_official(paths['evp_depth'], None, preset='tiny',
                                  config=EngineConfig(input_size=(64, 96), tta=True))
    assert np.isfinite(tta.predict(frame).depth).all()
