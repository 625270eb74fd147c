# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The deployment engine: resize and return, shared VAE encode, batched queries, text cache."""

import copy
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vpd_ros.engine import EngineConfig, VPDEngine
from vpd_ros.engine.config import COMPILE_MODES
from vpd_ros.engine.runner import compile_uses_cuda_graphs
from vpd_ros.engine.stage_clock import HostEvent, StageClock
from vpd_ros.engine.tta import shift_window_flip

RGB = (np.random.default_rng(0).random((120, 200, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope='module')
def engine():
    eng = VPDEngine.from_preset('tiny', seed=0, config=EngineConfig(input_size=(128, 128)))
    with torch.no_grad():  # a non-trivial adapter so that different queries differ
        eng.refer.backbone.gamma.fill_(1.0)
    return eng


def model_input(rgb, size):
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False,
                         antialias=True).clamp(0, 1)


def test_outputs_match_the_models_at_input_resolution(engine):
    """Depth and logits equal the models' own forward, resized back to the camera image."""
    pred = engine.predict(RGB, ['the red ball'])
    assert pred.depth.shape == RGB.shape[:2] and pred.depth.dtype == np.float32
    assert pred.masks.shape == (1,) + RGB.shape[:2] and pred.masks.dtype == bool
    x = model_input(RGB, (128, 128))
    with torch.no_grad():
        depth = engine.depth(x).depth
        logits = engine.refer(x, text=['the red ball']).logits
    depth = F.interpolate(depth, size=RGB.shape[:2], mode='bilinear', align_corners=False)
    probs = torch.softmax(F.interpolate(logits, size=RGB.shape[:2], mode='bilinear',
                                        align_corners=True), 1)[:, 1]
    np.testing.assert_allclose(pred.depth, depth[0, 0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pred.probs, probs.numpy(), atol=1e-4)
    np.testing.assert_array_equal(pred.masks, pred.probs > 0.5)
    inside = pred.probs[0][pred.masks[0]]
    assert pred.scores[0] == pytest.approx(float(inside.mean()) if inside.size else 0.0)
    assert set(pred.timings) >= {'preprocess', 'vae', 'depth', 'text', 'refer', 'postprocess'}


def test_one_vae_encode_is_shared_when_weights_match(engine):
    """The preset's two models carry identical VAEs: one module, one encode per frame."""
    assert engine.shared_vae
    assert engine.refer.backbone.vae is engine.depth.backbone.vae


def test_different_vae_weights_are_not_shared():
    """When the VAEs differ, each model encodes with its own and the engine says so."""
    eng = VPDEngine.from_preset('tiny', seed=1, config=EngineConfig(input_size=(64, 64)))
    base = eng.predict(RGB, ['a cube'])
    eng.refer.backbone.vae = copy.deepcopy(eng.depth.backbone.vae)
    with torch.no_grad():
        eng.refer.backbone.vae.encoder.conv_in.bias.add_(0.5)
    eng2 = VPDEngine(eng.depth, eng.refer, EngineConfig(input_size=(64, 64)))
    assert not eng2.shared_vae
    changed = eng2.predict(RGB, ['a cube'])
    np.testing.assert_allclose(changed.depth, base.depth, atol=1e-5)
    assert not np.allclose(changed.probs, base.probs, atol=1e-6)


def assert_same_prediction(got, expected):
    """Equal outputs: the same kernels on the same tensors and shapes (fp32 CPU is repeatable)."""
    np.testing.assert_array_equal(got.depth, expected.depth)
    np.testing.assert_array_equal(got.probs, expected.probs)
    np.testing.assert_array_equal(got.masks, expected.masks)
    assert got.scores == expected.scores and got.truncated == expected.truncated


def test_ground_latest_reuses_the_kept_frame_and_equals_a_full_predict(engine):
    """use_latest: text and the referring pass on the kept frame's latents; depth is reused."""
    engine.predict(RGB, ['the red ball'], frame_id=7)  # a frame with a standing query, kept
    engine.predict(RGB[::-1].copy(), ['a lamp'])  # no frame_id: frame 7 stays kept
    got = engine.ground_latest(['a green chair', 'a lamp'], 7, mask_threshold=0.4)
    assert_same_prediction(got, engine.predict(RGB, ['a green chair', 'a lamp'],
                                               mask_threshold=0.4))
    assert {'text', 'refer', 'postprocess'} <= set(got.timings)
    assert not {'vae', 'depth', 'preprocess'} & set(got.timings)  # no encode, no depth pass
    assert engine.ground_latest(['a lamp'], 8) is None  # not the kept frame: run predict
    engine.predict(RGB, depth=True, frame_id='depth only')  # latents kept without a query
    got = engine.ground_latest(['a lamp'], 'depth only')
    assert 'vae' not in got.timings
    assert_same_prediction(got, engine.predict(RGB, ['a lamp']))


def test_ground_latest_encodes_for_a_referring_vae_of_its_own():
    """With separate VAEs a depth-only frame has no referring latents: encoded once, then kept."""
    eng = VPDEngine.from_preset('tiny', seed=1, config=EngineConfig(input_size=(64, 64)))
    eng.refer.backbone.vae = copy.deepcopy(eng.depth.backbone.vae)
    with torch.no_grad():
        eng.refer.backbone.vae.encoder.conv_in.bias.add_(0.5)
    eng = VPDEngine(eng.depth, eng.refer, EngineConfig(input_size=(64, 64)))
    assert not eng.shared_vae and not eng.takes_caption
    eng.predict(RGB, frame_id=1)
    first = eng.ground_latest(['a cube'], 1)
    assert 'vae' in first.timings
    assert_same_prediction(first, eng.predict(RGB, ['a cube']))
    assert 'vae' not in eng.ground_latest(['a cube'], 1).timings


def test_queries_run_as_one_batch_with_the_same_result(engine):
    """Two queries in one call give the masks each gives alone; different queries differ."""
    both = engine.predict(RGB, ['the red ball', 'the blue cube on the left'], depth=False)
    assert both.depth is None
    for i, q in enumerate(['the red ball', 'the blue cube on the left']):
        alone = engine.predict(RGB, [q], depth=False)
        np.testing.assert_allclose(both.probs[i], alone.probs[0], atol=1e-5)
    assert not np.allclose(both.probs[0], both.probs[1])


def test_text_features_are_cached_per_query():
    """Text features are computed once per query and evicted least-recently-used."""
    eng = VPDEngine.from_preset('tiny', tasks=('refer',),
                                config=EngineConfig(input_size=(64, 64), text_cache_size=2))
    eng.text_features(['a'])
    entry = eng._text_cache['a'][0]
    again, _ = eng.text_features(['a'])
    assert eng._text_cache['a'][0] is entry
    torch.testing.assert_close(again[0], entry)
    eng.text_features(['b'])
    eng.text_features(['c'])
    assert list(eng._text_cache) == ['b', 'c']
    feats, cut = eng.text_features(['word ' * 60, 'b'])
    assert feats.shape == (2, eng.token_length, 64) and cut == [True, False]


def test_single_task_engines_and_bad_input():
    """Depth-only and refer-only engines refuse the other task; bad arrays are refused by name."""
    depth_only = VPDEngine.from_preset('tiny', tasks=('depth',),
                                       config=EngineConfig(input_size=(64, 64)))
    assert depth_only.tasks == ('depth',)
    with pytest.raises(RuntimeError, match='no referring model'):
        depth_only.predict(RGB, ['a ball'])
    for bad in (RGB.astype(np.float32), RGB[..., :2], np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError, match='uint8 RGB'):
            depth_only.predict(bad)
    with pytest.raises(ValueError, match='multiples of 32'):
        EngineConfig(input_size=(100, 64))
    with pytest.raises(ValueError, match='dtype'):
        EngineConfig(dtype='float8')
    depth_only.release()
    assert depth_only.depth is None


def test_tta_equals_official_stitching():
    """Windows at x=0 and W-H, each averaged with its un-flipped mirror, overlap averaged."""
    image = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 1, 4, 6).expand(1, 3, 4, 6)

    def predict(batch):  # not flip-equivariant: depends on the column inside the window
        cols = torch.arange(batch.shape[-1], dtype=batch.dtype)
        return batch[:, :1] + cols

    out = shift_window_flip(predict, image)
    img = image[0, 0]
    # window prediction averaged with its flip: img + (c + (h - 1 - c)) / 2 = img + 1.5
    expected = img + 1.5
    torch.testing.assert_close(out[0, 0], expected)
    no_flip = shift_window_flip(predict, image, flip=False)
    left = img[:, :4] + torch.arange(4.0)
    right = img[:, 2:] + torch.arange(4.0)
    manual = torch.zeros(4, 6)
    count = torch.zeros(4, 6)
    manual[:, :4] += left
    manual[:, 2:] += right
    count[:, :4] += 1
    count[:, 2:] += 1
    torch.testing.assert_close(no_flip[0, 0], manual / count)


def test_engine_tta_runs_on_wide_input():
    """With tta the depth of a 480x640-like input is the stitched windows' average."""
    eng = VPDEngine.from_preset('tiny', tasks=('depth',),
                                config=EngineConfig(input_size=(64, 96), tta=True))
    pred = eng.predict(RGB)
    x = model_input(RGB, (64, 96))
    with torch.no_grad():
        manual = shift_window_flip(lambda b: eng.depth(b).depth, x)
    manual = F.interpolate(manual, size=RGB.shape[:2], mode='bilinear', align_corners=False)
    np.testing.assert_allclose(pred.depth, manual[0, 0].numpy(), rtol=1e-4, atol=1e-4)


def test_per_frame_settings_are_predict_arguments(engine):
    """mask_threshold and scene act on the one frame they are passed with, and are checked."""
    low = engine.predict(RGB, ['the red ball'], depth=False, mask_threshold=0.05)
    high = engine.predict(RGB, ['the red ball'], depth=False, mask_threshold=0.95)
    np.testing.assert_array_equal(low.probs, high.probs)
    np.testing.assert_array_equal(low.masks, low.probs > 0.05)
    np.testing.assert_array_equal(high.masks, high.probs > 0.95)
    depth_only = VPDEngine.from_preset('tiny', tasks=('depth',),
                                       config=EngineConfig(input_size=(64, 64)))
    scene0 = depth_only.predict(RGB, scene=0).depth
    x = model_input(RGB, (64, 64))
    with torch.no_grad():
        manual = depth_only.depth(x, scene=torch.tensor([0])).depth
    manual = F.interpolate(manual, size=RGB.shape[:2], mode='bilinear', align_corners=False)
    np.testing.assert_allclose(scene0, manual[0, 0].numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='outside'):  # the id reaches the model's class table
        depth_only.predict(RGB, scene=10 ** 6)
    for bad in ({'mask_threshold': 1.0}, {'mask_threshold': 0.0}, {'scene': -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            engine.predict(RGB, **bad)


def test_engine_config_stride_is_the_models():
    """The torch-free option checks use the models' downsampling factor."""
    from vpd_ros.engine.config import STRIDE
    from vpd_ros.model.depth import STRIDE as MODEL_STRIDE

    assert STRIDE == MODEL_STRIDE


def test_loader_spec_refuses_what_cannot_load(tmp_path):
    """Blank weights, unknown tasks and a missing folder are refused by name."""
    from vpd_ros.engine import EngineSpec, load_engine

    with pytest.raises(ValueError, match='weights'):
        EngineSpec(weights='  ')
    with pytest.raises(ValueError, match='tasks'):
        EngineSpec(tasks=('depth', 'pose'))
    with pytest.raises(FileNotFoundError, match='not a folder'):
        load_engine(EngineSpec(weights=str(tmp_path / 'missing')))
    spec = EngineSpec(weights='random:tiny', tasks=('refer',))
    loaded = load_engine(spec, EngineConfig(input_size=(64, 64)))
    assert loaded.tasks == ('refer',) and loaded.input_size == (64, 64)
    assert loaded.truncated(['a ball', 'word ' * 200]) == [False, True]


def test_compile_mode_decides_cuda_graphs():
    """reduce-overhead and max-autotune capture CUDA graphs, default does not; never on CPU."""
    assert [compile_uses_cuda_graphs(m) for m in COMPILE_MODES] == [False, False, True, True]
    eng = VPDEngine.from_preset('tiny', config=EngineConfig(device='cpu', input_size=(64, 64),
                                                            compile='reduce-overhead'))
    assert not eng.uses_cuda_graphs  # CPU tensors: inductor captures no graphs
    eng.release()
    assert eng.tasks == ()


def test_stage_clock_adds_up_stages_and_synchronises_each_event():
    """Stages of one name add up; a synchronising host event waits before every reading."""
    waits = []
    clock = StageClock(lambda: HostEvent(lambda: waits.append(1)))
    for _ in range(2):
        with clock.stage('vae'):
            time.sleep(0.01)
    clock.begin('depth')
    clock.begin('depth_unet')
    clock.end('depth_unet')
    clock.begin('vae')  # left open by a failure: not counted
    clock.end('depth')
    times = clock.resolve()
    assert set(times) == {'vae', 'depth', 'depth_unet'}
    assert times['vae'] >= 20.0 and times['depth'] >= times['depth_unet'] >= 0.0
    assert len(waits) == 9


def test_scene_is_checked_on_the_host_once_and_cached():
    """A scene id becomes one cached device tensor; an id outside the classes is refused."""
    eng = VPDEngine.from_preset('tiny', tasks=('depth',),
                                config=EngineConfig(input_size=(64, 64)))
    first = eng.predict(RGB, scene=0)
    assert eng._scene(0) is eng._scene(0)
    np.testing.assert_allclose(eng.predict(RGB).depth, first.depth, atol=1e-6)  # one class
    with pytest.raises(ValueError, match=r'scene ids \[1\] outside \[0, 1\)'):
        eng.predict(RGB, scene=1)  # the tiny preset has one scene class


def fail_in_last_up_block(model, error):
    """Raise ``error`` after the feature taps and attention maps of the pass were stored."""
    def hook(*_):
        raise error
    return model.backbone.unet.up_blocks[-1].register_forward_hook(hook)


def test_failed_pass_drops_taps_attention_maps_and_frame_tensors():
    """Out of memory mid-pass: the backbone keeps no activations and the frame's are freed."""
    eng = VPDEngine.from_preset('tiny', config=EngineConfig(input_size=(64, 64)))
    hook = fail_in_last_up_block(eng.refer, torch.OutOfMemoryError('CUDA out of memory'))
    with pytest.raises(torch.OutOfMemoryError) as info:
        eng.predict(RGB, ['the chair'], depth=False)
    hook.remove()
    backbone = eng.refer.backbone
    assert backbone._taps == {} and backbone.attention_store.maps == {}
    frames, tb = {}, info.value.__traceback__
    while tb is not None:
        frames[tb.tb_frame.f_code.co_name] = tb.tb_frame
        tb = tb.tb_next
    assert frames['_predict'].f_locals == {} and frames['unet_features'].f_locals == {}
    assert eng.predict(RGB, ['the chair'], depth=False).probs.shape == (1,) + RGB.shape[:2]


def test_other_failures_also_drop_the_taps():
    """Any failure inside the pass leaves the depth backbone without stored taps."""
    eng = VPDEngine.from_preset('tiny', tasks=('depth',), config=EngineConfig(input_size=(64, 64)))
    hook = fail_in_last_up_block(eng.depth, RuntimeError('injected'))
    with pytest.raises(RuntimeError, match='injected'):
        eng.predict(RGB)
    hook.remove()
    assert eng.depth.backbone._taps == {}
