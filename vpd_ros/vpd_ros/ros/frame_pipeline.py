# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One camera frame through the node on the worker thread: decode, engine, messages, publish.

The node's per-frame settings (parameters read once per frame) go to the engine as arguments
of ``predict``; refused input and failed frames are counted and logged with a throttle.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Dict

from vpd_ros.ros.caption import engine_caption
from vpd_ros.ros.conversions import ImageDecodeError, decode_image
from vpd_ros.ros.diagnostics import LogLimiter
from vpd_ros.ros.messages import frame_messages, groundings
from vpd_ros.ros.params import engine_value
from vpd_ros.ros.worker import Job

if TYPE_CHECKING:  # the node imports this module
    from vpd_ros.ros.node import VPDNode

#: Seconds between repeats of the same input warning.
LOG_THROTTLE_S = 5.0


class FramePipeline:
    """The worker's ``process`` and ``on_error`` for ``node`` (its engine, outputs and stats)."""

    def __init__(self, node: VPDNode) -> None:
        self._node = node
        self._log_limiter = LogLimiter(LOG_THROTTLE_S)

    # rclpy fixes each call site's severity, so warnings and errors need their own lines.
    def _warn_limited(self, text: str) -> None:
        """Log a warning unless the same text was logged within LOG_THROTTLE_S seconds."""
        if self._log_limiter.allow(text):
            self._node.get_logger().warning(text)

    def _error_limited(self, text: str) -> None:
        """Log an error unless the same text was logged within LOG_THROTTLE_S seconds."""
        if self._log_limiter.allow(text):
            self._node.get_logger().error(text)

    def process(self, job: Job) -> None:
        """Decode, run the engine once for all queries, encode and publish (worker thread)."""
        node = self._node
        settings, engine, stats = node.settings, node.engine, node.stats
        if engine is None:
            raise RuntimeError('engine released')
        subscribed = node.subscribed_outputs()
        if settings['lazy'] and not job.requests and not subscribed:
            stats.count('idle')  # nobody needs this frame: skip the model entirely
            return
        t: Dict[str, float] = {}
        start = time.perf_counter()
        header = job.frame.msg.header
        try:
            rgb = decode_image(job.frame.msg, int(settings['max_image_pixels']))
        except ImageDecodeError as error:
            text = f'image refused: {error}'
            stats.error('decode_errors', text)
            self._warn_limited(text)
            for request in job.requests:
                request.finish(error=text)
            return
        t['decode'] = (time.perf_counter() - start) * 1e3
        try:
            info, rays = node.camera.rays((rgb.shape[1], rgb.shape[0]))
        except ValueError as error:
            text = f'camera_info unusable, no 3D output: {error}'
            stats.error('camera_info_errors', text)
            self._warn_limited(text)
            info, rays = None, None
        standing = [] if job.replay else node.queries.standing()
        queries = list(dict.fromkeys(standing + [r.query for r in job.requests]))
        engine.set_caption(engine_caption(settings['depth_caption']))  # between frames
        threshold = engine_value('mask_threshold', settings['mask_threshold'])
        frame_id = (job.frame.seq, job.frame.received)  # unique across worker restarts
        # use_latest on a frame the engine still holds: only text and the referring pass run.
        prediction = engine.ground_latest(queries, frame_id, threshold) if job.replay else None
        if prediction is not None:
            stats.count('ground_reused')
        else:
            prediction = engine.predict(rgb, queries, depth='depth' in engine.tasks,
                                        mask_threshold=threshold,
                                        scene=engine_value('scene', settings['scene']),
                                        frame_id=frame_id)
        t.update({f'engine.{k}': v for k, v in prediction.timings.items()})
        mark = time.perf_counter()
        found = groundings(prediction, header, queries, rays)
        by_query = dict(zip(queries, found))
        for request in job.requests:
            request.finish(result=by_query[request.query])
        outgoing = [] if job.replay else frame_messages(
            prediction, header, rgb, info, rays, standing, found, settings, subscribed,
            'refer' in engine.tasks)
        t['encode'] = (time.perf_counter() - mark) * 1e3
        mark = time.perf_counter()
        for name, msg in outgoing:
            node.publish_output(name, msg)
        t['publish'] = (time.perf_counter() - mark) * 1e3
        t['total'] = (time.perf_counter() - start) * 1e3
        if not job.replay:
            stats.frame(t)

    def on_error(self, job: Job, error: BaseException) -> None:
        """Count and log a failed frame (worker thread); at shutdown it is not an error."""
        node = self._node
        if not node.context.ok():  # a signal shut ROS down mid-frame: shutdown is not an error
            node.get_logger().debug(f'frame abandoned at shutdown: {error}')
            return
        text = f'inference failed, frame dropped: {type(error).__name__}: {error}'
        node.stats.error('inference_errors', text)
        self._error_limited(text)
