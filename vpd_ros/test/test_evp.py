# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""EVP models: official-layout loading, token ids and the head formulas the specification states;
the engine, the CLI and the deployment backends on EVP weights."""

import json
import logging
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deploy_checks import rebuilds, refuse_model, rel_l2
from official_layout import export_official, refer_extras
from vpd_ros.data import HELDOUT_SEEDS_START, render_scene
from vpd_ros.engine import EngineConfig, EngineSpec, VPDEngine, load_engine
from vpd_ros.engine.deploy.engine import BackendConfig
from vpd_ros.model import (CheckpointMismatchError, EVPDepth, EVPRefer, VPDDepth, VPDRefer,
                           get_preset)
from vpd_ros.model.bins import InverseAttractor, LogBinomial, log_binomial_coefficient
from vpd_ros.model.evp_depth import load_caption_embedding
from vpd_ros.model.convert import (DEPTH_PREFIXES, EVP_DEPTH_PREFIXES, EVP_REFER_PREFIXES,
                                   REFER_PREFIXES)
from vpd_ros.model.imafr import AttentionDownsamplingModule, group_count
from vpd_ros.model.official import classify_checkpoint, load_official_checkpoint
from vpd_ros.engine.tta import shift_window_flip
from vpd_ros.apps.captions import CaptionTable
from vpd_ros.model.official import preset_of_state
from vpd_ros.model.presets import split_model_name

CLASSES = {'evp_depth': EVPDepth, 'evp_refer': EVPRefer}
BACKEND_QUERIES = ['the red box', 'the chair on the left']
PREFIXES = {'evp_depth': EVP_DEPTH_PREFIXES, 'evp_refer': EVP_REFER_PREFIXES}


def tiny(kind, **overrides):
    """A tiny EVP model with seeded random weights (eval mode)."""
    p = get_preset('tiny')
    torch.manual_seed(3)
    return CLASSES[kind](p['unet'], p['vae'], p['text'], **dict(p[kind], **overrides)).eval()


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
    paths = {}
    for kind in ('evp_depth', 'evp_refer'):
        paths[kind] = str(tmp_path / f'{kind}.pth')
        torch.save({'model': export_official(kind, tiny(kind), PREFIXES[kind])}, paths[kind])
    frame = (torch.rand(48, 80, 3) * 255).to(torch.uint8).numpy()
    engine = VPDEngine.from_official(paths['evp_depth'], paths['evp_refer'],
                                     config=EngineConfig(input_size=(64, 96)))  # tiny: by content
    assert isinstance(engine.depth, EVPDepth) and isinstance(engine.refer, EVPRefer)
    assert engine.takes_caption
    assert not engine.shared_vae  # different latent divisors: each model encodes the frame
    first = engine.predict(frame, ['the red mug'])
    assert first.depth.shape == (48, 80) and first.masks.shape == (1, 48, 80)
    engine.set_caption('a long corridor with doors')
    assert not np.array_equal(engine.predict(frame).depth, first.depth)
    with pytest.raises(ValueError, match='non-empty'):
        engine.set_caption(' ')
    tta = VPDEngine.from_official(paths['evp_depth'], None,
                                  config=EngineConfig(input_size=(64, 96), tta=True))
    assert np.isfinite(tta.predict(frame).depth).all()


def test_sizes_are_read_from_the_file(tmp_path):
    """The UNet width in the file picks the preset (32: tiny); an unknown width is named."""
    state = export_official('evp_refer', tiny('evp_refer'), EVP_REFER_PREFIXES)
    assert preset_of_state(state, 'f') == 'tiny'
    key = 'unet.unet.diffusion_model.input_blocks.0.0.weight'
    state[key] = torch.zeros(48, 4, 3, 3)
    with pytest.raises(CheckpointMismatchError, match='f: UNet width 48 matches no preset'):
        preset_of_state(state, 'f')
    assert preset_of_state({key: torch.zeros(320, 4, 3, 3)}, 'f') == 'sd15'


def test_random_evp_weights_by_name():
    """random:evp-<size> builds EVP models of a preset (bench and tests); unknown names listed."""
    engine = load_engine(EngineSpec(weights='random:evp-tiny'),
                         EngineConfig(input_size=(64, 64)))
    assert isinstance(engine.depth, EVPDepth) and isinstance(engine.refer, EVPRefer)
    assert engine.depth.token_length == get_preset('tiny')['evp_depth']['token_length']
    assert not engine.shared_vae  # EVP's two VAEs are separate, as in its checkpoints
    pred = engine.predict(np.zeros((48, 80, 3), np.uint8), ['the mug'])
    assert pred.depth.shape == (48, 80) and pred.masks.shape == (1, 48, 80)
    assert {'depth_imafr', 'depth_bins', 'refer_imafr'} <= set(pred.timings)
    assert split_model_name('sd15') == ('vpd', 'sd15')
    assert split_model_name('evp-sd15') == ('evp', 'sd15')
    with pytest.raises(ValueError, match='evp-huge.*sd15, tiny, evp-sd15, evp-tiny'):
        load_engine(EngineSpec(weights='random:evp-huge'))


def test_saved_evp_folders_load_as_evp(tmp_path):
    """A folder of save_pretrained EVP models loads as EVP, with the same outputs; a folder
    whose config names a model of the other task is refused, naming the class."""
    config = EngineConfig(input_size=(64, 64))
    engine = load_engine(EngineSpec(weights='random:evp-tiny'), config)
    engine.depth.save_pretrained(str(tmp_path / 'evp' / 'depth'))
    engine.refer.save_pretrained(str(tmp_path / 'evp' / 'refer'))
    loaded = load_engine(EngineSpec(weights=str(tmp_path / 'evp')), config)
    assert isinstance(loaded.depth, EVPDepth) and isinstance(loaded.refer, EVPRefer)
    frame = (torch.rand(48, 80, 3) * 255).to(torch.uint8).numpy()
    want, got = engine.predict(frame, ['the mug']), loaded.predict(frame, ['the mug'])
    np.testing.assert_array_equal(got.depth, want.depth)
    np.testing.assert_array_equal(got.masks, want.masks)
    engine.refer.save_pretrained(str(tmp_path / 'swapped' / 'depth'))
    with pytest.raises(ValueError, match="names class 'EVPRefer', not a depth model"):
        load_engine(EngineSpec(weights=str(tmp_path / 'swapped'), tasks=('depth',)), config)


@pytest.mark.slow
@pytest.mark.timeout(900)  # exports eight graphs; with both cores busy elsewhere, minutes
def test_evp_graphs_equal_torch_and_start_from_cache(tmp_path, caplog, monkeypatch):
    """EVP (a saved evp-tiny folder; both VAE encoders with the same weights, as in EVP's
    checkpoints, each model dividing by its own latent divisor): depth within 1e-4 rel L2 and
    1 mm and masks within 0.05 % of pixels of the torch engine, for the default and a set
    caption; a second start opens the cached graphs without building a torch model."""
    pytest.importorskip('onnxruntime')
    caplog.set_level(logging.INFO, logger='vpd_ros.engine.deploy')
    models = VPDEngine.from_preset('evp-tiny', config=EngineConfig(device='cpu'))
    depth, refer = models.depth, models.refer
    # EVP depth keeps no post_quant_conv (decoder side); everything the encoder uses is copied
    loaded = refer.backbone.vae.load_state_dict(depth.backbone.vae.state_dict(), strict=False)
    assert not loaded.unexpected_keys
    assert depth.backbone.latent_divisor != refer.backbone.latent_divisor
    depth.save_pretrained(str(tmp_path / 'evp' / 'depth'))
    refer.save_pretrained(str(tmp_path / 'evp' / 'refer'))
    spec = EngineSpec(weights=str(tmp_path / 'evp'))
    size = (64, 64)
    want_engine = load_engine(spec, EngineConfig(device='cpu', input_size=size))
    config = BackendConfig(device='cpu', input_size=size, cache_dir=str(tmp_path / 'cache'))
    engine = load_engine(spec, config)
    assert rebuilds(caplog) == 1
    assert engine.takes_caption and not engine.shared_vae
    assert set(engine.graph_files) == {'depth_vae', 'depth_unet', 'depth_head', 'depth_text',
                                       'refer_vae', 'refer_unet', 'refer_head', 'text'}
    rgb = render_scene(HELDOUT_SEEDS_START, width=160, height=120).rgb
    results = []
    for caption in (None, 'a long corridor with doors'):
        if caption:
            want_engine.set_caption(caption)
            engine.set_caption(caption)
        want, got = want_engine.predict(rgb, BACKEND_QUERIES), engine.predict(rgb, BACKEND_QUERIES)
        assert rel_l2(got.depth, want.depth) <= 1e-4
        assert np.abs(got.depth - want.depth).max() <= 1e-3
        assert got.masks.shape == want.masks.shape == (2,) + rgb.shape[:2]
        assert (got.masks != want.masks).mean() <= 5e-4
        results.append(got)
    assert not np.array_equal(results[0].depth, results[1].depth)  # the caption reaches depth

    with monkeypatch.context() as patch:
        patch.setattr(EVPDepth, '__init__', refuse_model)
        patch.setattr(EVPRefer, '__init__', refuse_model)
        cached = load_engine(spec, config).predict(rgb, BACKEND_QUERIES)
    assert rebuilds(caplog) == 1
    np.testing.assert_array_equal(cached.depth, results[0].depth)
    np.testing.assert_array_equal(cached.masks, results[0].masks)


def test_caption_table_names_images_by_whole_path_components(tmp_path):
    """Keys name images by path suffix (whole components, extension optional), never by text."""
    table = CaptionTable({'nyu_depth_v2/official_splits/test/bathroom/rgb_00045.jpg': 'a bath',
                          'official_splits/test/kitchen/rgb_00045.jpg': 'a kitchen',
                          'scene_0000002.png': 'a room', 'rgb_0004.jpg': 'short'}, 'c.json')
    root = '/data/nyu_depth_v2/official_splits/test'
    assert table.caption(f'{root}/bathroom/rgb_00045.jpg') == 'a bath'
    assert table.caption(f'{root}/kitchen/rgb_00045.jpg') == 'a kitchen'
    assert table.caption('scene_0000002') == 'a room'  # a user-folder sample's name
    assert table.caption('test/bathroom/rgb_00045.jpg') == 'a bath'  # relative list entry
    with pytest.raises(ValueError, match='no entry for image /x/office/rgb_00045.jpg'):
        table.caption('/x/office/rgb_00045.jpg')
    with pytest.raises(ValueError, match='2 different captions for image rgb_00045.jpg'):
        table.caption('rgb_00045.jpg')
    # EVP's captions file: {path: {'caption': [str], 'class_embeddings': tensor}}, 'aggregated'.
    path = str(tmp_path / 'nyu_class_embeddings_my_captions.pth')
    torch.save({'aggregated': torch.zeros(1, 8, 64),
                'nyu_depth_v2/official_splits/test/bathroom/rgb_00045.jpg':
                    {'caption': ['a white bathroom', 'unused'],
                     'class_embeddings': torch.zeros(768)}}, path)
    assert CaptionTable.load(path).caption(f'{root}/bathroom/rgb_00045.jpg') == \
        'a white bathroom'


# --- the command line with EVP files (tiny sizes, official layout) --------------------------


@pytest.fixture(scope='module')
def evp_files(tmp_path_factory):
    """Tiny EVP files in the official layout (refer with its training extras), and 2 rooms."""
    from vpd_ros.data import render_scene
    from vpd_ros.data.readers import write_user_depth_dataset, write_user_refer_dataset
    root = tmp_path_factory.mktemp('evp_cli')
    files = {'depth': str(root / 'best_model_nyu.ckpt'),
             'refer': str(root / 'best_model_refcoco.pth')}
    torch.save({'model': export_official('evp_depth', tiny('evp_depth'), EVP_DEPTH_PREFIXES)},
               files['depth'])
    torch.save({'model': export_official('evp_refer', tiny('evp_refer'), EVP_REFER_PREFIXES),
                **refer_extras()}, files['refer'])
    scenes = [render_scene(seed) for seed in (1000000, 1000001)]
    stems = write_user_depth_dataset(scenes, root / 'data')
    files['json'] = str(write_user_refer_dataset(scenes, root / 'data'))
    files['data'] = str(root / 'data')
    files['captions'] = str(root / 'captions.json')
    with open(files['captions'], 'w', encoding='utf-8') as f:
        json.dump({f'rgb/{stems[0]}.png': 'a small room with a table',
                   f'rgb/{stems[1]}.png': 'a bedroom with a lamp'}, f)
    files['root'] = str(root)
    return files


def run_main(capsys: pytest.CaptureFixture, *args: str) -> tuple:
    """Run ``vpd-ros ARGS`` through the console script's ``main`` in this process; return the
    exit code and what it printed to stdout and stderr."""
    from vpd_ros.apps.cli import main
    capsys.readouterr()
    code = main(list(args))
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_cli_infer_runs_evp_files(evp_files, tmp_path, capsys):
    """vpd-ros infer with EVP's two files (told apart by content) writes depth and masks.

    Run in this process (the console script's ``main``; test_cli_infer starts the script).
    """
    image = os.path.join(evp_files['data'], 'rgb', 'scene_1000000.png')
    code, out, err = run_main(capsys, 'infer', image, '-o', str(tmp_path / 'out'), '-q',
                              'the red ball', '--depth-checkpoint', evp_files['depth'],
                              '--refer-checkpoint', evp_files['refer'], '--caption',
                              'a small room', '--device', 'cpu', '--input-size', '64x96')
    assert code == 0, err
    assert 'processed 1 of 1 images' in out
    depth = np.load(tmp_path / 'out' / 'scene_1000000_depth.npy')
    assert depth.shape == (240, 320) and np.isfinite(depth).all()
    assert (tmp_path / 'out' / 'scene_1000000_mask-the-red-ball.png').is_file()


def test_cli_eval_runs_evp_files_with_captions_and_tta(evp_files, tmp_path, capsys):
    """vpd-ros eval: per-image captions and EVP's TTA; the same numbers as the loop in Python.

    Every image must have its caption; a file that is no captions file is a usage error.
    """
    from vpd_ros.apps.evaluate import evaluate_depth
    from vpd_ros.data import UserDepthFolder
    out = str(tmp_path / 'metrics.json')
    code, stdout, stderr = run_main(
        capsys, 'eval', '--data', 'user', '--folder', evp_files['data'], '--json',
        evp_files['json'], '--depth-checkpoint', evp_files['depth'], '--refer-checkpoint',
        evp_files['refer'], '--captions', evp_files['captions'], '--tta', '--device', 'cpu',
        '--input-size', '64x96', '--json-out', out)
    assert code == 0, stderr
    assert 'depth: d1 ' in stdout and 'refer: oIoU ' in stdout
    with open(out, encoding='utf-8') as f:
        metrics = json.load(f)
    assert metrics['depth']['count'] == 2 and metrics['refer']['count'] > 2
    engine = VPDEngine.from_official(evp_files['depth'], None,
                                     config=EngineConfig(input_size=(64, 96), tta=True))
    data = UserDepthFolder(evp_files['data'])
    captioned = evaluate_depth(engine, data, captions=CaptionTable.load(evp_files['captions']))
    assert captioned == pytest.approx(metrics['depth'], rel=1e-5)
    partial = CaptionTable({'scene_1000000': 'a room'}, 'partial.json')
    with pytest.raises(ValueError, match='partial.json: no entry for image scene_1000001'):
        evaluate_depth(engine, data, captions=partial)
    assert engine.caption == 'a room'  # each image is conditioned on its own caption
    code, _, stderr = run_main(capsys, 'eval', '--data', 'user', '--folder', evp_files['data'],
                               '--tasks', 'depth', '--depth-checkpoint', evp_files['depth'],
                               '--captions', out, '--device', 'cpu', '--input-size', '64x96')
    assert code == 2 and 'holds no caption' in stderr, stderr
    assert 'Traceback' not in stderr
