# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The engine's CUDA paths, run where CUDA is present (marker ``gpu``; skipped elsewhere).

Pinned-memory transfers, the depth UNet on a side stream, stage times from CUDA events, TF32
set per engine, weights drawn on the device, the per-engine device-memory peak, recovery from a
real CUDA out-of-memory error, and (``slow``: it compiles) CUDA graphs recorded on the serving
thread and freed with it. ``bench/gpu_bench.sh`` runs these on a lent GPU.
"""

import gc
import threading

import numpy as np
import pytest
import torch

from vpd_ros.apps import bench
from vpd_ros.engine import EngineConfig, VPDEngine

pytestmark = pytest.mark.gpu

RGB = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
QUERIES = ['the chair', 'the red mug on the left']


def tiny(**options):
    """A tiny fp32 engine on CUDA at 64x64 with a strong text adapter (queries differ)."""
    config = EngineConfig(device='cuda', dtype='float32', input_size=(64, 64), **options)
    engine = VPDEngine.from_preset('tiny', seed=0, config=config)
    with torch.no_grad():
        engine.refer.backbone.gamma.fill_(1.0)
    return engine


def assert_same(a, b, atol=1e-4):
    np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4, atol=atol)
    np.testing.assert_allclose(a.probs, b.probs, atol=atol)


def test_weights_are_drawn_on_the_device_and_seeded():
    """from_preset builds on CUDA directly; the same seed gives the same tensors."""
    a, b = tiny(), tiny()
    for (name, ta), tb in zip(a.depth.state_dict().items(), b.depth.state_dict().values()):
        assert ta.device.type == 'cuda' and torch.equal(ta, tb), name


def test_pinned_and_overlapped_frames_equal_the_plain_ones():
    """Pinned transfers and the side-stream overlap change no output."""
    plain = tiny(pinned_memory=False, overlap=False)
    fast = tiny()
    assert fast._overlaps(True, QUERIES) and not plain._overlaps(True, QUERIES)
    for _ in range(3):  # back to back: the side stream must not race the next frame
        assert_same(fast.predict(RGB, QUERIES), plain.predict(RGB, QUERIES))


def test_stage_times_come_from_events_without_profiling():
    """Profiling off: every stage is timed (CUDA events), the UNets within their stages."""
    t = tiny().predict(RGB, QUERIES).timings
    assert {'preprocess', 'vae', 'text', 'depth', 'depth_unet', 'refer', 'refer_unet',
            'postprocess', 'total'} <= set(t)
    assert t['depth'] >= t['depth_unet'] > 0 and t['refer'] >= t['refer_unet'] > 0
    assert t['refer_head'] == pytest.approx(t['refer'] - t['refer_unet'])


def test_tf32_flags_follow_the_engine_that_runs():
    """Each engine sets the process-wide TF32 flags to its own setting on every frame."""
    strict, loose = tiny(), tiny(tf32=True)
    for engine, expected in ((loose, True), (strict, False), (loose, True)):
        engine.predict(RGB)
        assert torch.backends.cuda.matmul.allow_tf32 is expected
        assert torch.backends.cudnn.allow_tf32 is expected
    strict.predict(RGB)


def test_device_peak_is_per_engine():
    """Two engines loaded at once: each one's peak holds its own weights, not the other's."""
    gc.collect()  # engines of earlier tests (reference cycles) would count as another's memory
    engines = {'a': tiny(), 'b': tiny(channels_last=False)}
    results = bench.bench_engines(engines, bench.make_frame(96, 128), 1, iterations=2, warmup=1)
    total = sum(r.weights_mb for r in results.values())
    for r in results.values():
        assert r.weights_mb <= r.device_peak_mb < total


def test_out_of_memory_frees_the_frame_and_the_engine_goes_on():
    """A real CUDA OOM mid-frame: the frame's memory is back at once and the next frame runs."""
    engine = tiny()
    expected = engine.predict(RGB)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + 2 ** 20) / total)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            engine.predict(RGB)
        assert torch.cuda.memory_allocated() <= before + 2 ** 16  # no activations held
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    np.testing.assert_allclose(engine.predict(RGB).depth, expected.depth, rtol=1e-5, atol=1e-5)


def test_cuda_graph_mode_turns_the_overlap_off():
    """reduce-overhead and max-autotune capture CUDA graphs: one stream; default keeps two."""
    for mode, graphs in (('reduce-overhead', True), ('max-autotune', True), ('default', False)):
        engine = tiny(compile=mode)  # compiled lazily: no frame runs here
        assert engine.uses_cuda_graphs is graphs
        assert engine._overlaps(True, QUERIES) is not graphs
        engine.release()


@pytest.mark.slow
def test_cuda_graphs_are_recorded_on_the_serving_thread_and_freed():
    """CUDA graphs served on a thread give eager outputs and leave no memory behind.

    After the serving thread ends and release() runs, the graph pools and the compiled code
    are gone, and with them every device tensor of the engine.
    """
    gc.collect()
    torch.cuda.empty_cache()
    start = torch.cuda.memory_allocated()
    eager = tiny().predict(RGB, QUERIES[:1])
    engine = tiny(compile='reduce-overhead')
    engine.warmup(queries=1, iterations=1)  # compiles on this thread, as the node configures
    engine.release_thread_graphs()
    out = []

    def serve():
        with engine.serving(queries=1):
            out.extend(engine.predict(RGB, QUERIES[:1]) for _ in range(2))

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join()
    assert len(out) == 2
    for pred in out:
        assert_same(pred, eager, atol=1e-3)
    engine.release()  # the engine object itself then holds no device memory
    torch.cuda.empty_cache()
    assert torch.cuda.memory_allocated() - start < 2 ** 20
