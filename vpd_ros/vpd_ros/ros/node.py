# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd_node``: VPD depth and referring segmentation behind a ROS 2 lifecycle node.

The subscription callbacks only hand the newest frame to an :class:`InferenceWorker`; the
model runs on that worker's thread, so services, parameters and lifecycle requests answer
while a frame is in flight. See docs/ros-interface.md for the full interface.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_policy_name_from_kind)

try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header, String
from visualization_msgs.msg import Marker

from vpd_ros.ros.camera import CameraRays
from vpd_ros.ros.conversions import ImageDecodeError, decode_image
from vpd_ros.ros.diagnostics import FrameStats, LogLimiter, diagnostic_array
from vpd_ros.ros.messages import delete_all_marker, frame_messages, groundings
from vpd_ros.ros.params import (RUNTIME, NodeConfig, check_value, declare_parameters,
                                engine_value, parameter_values, qos_profile, read_config)
from vpd_ros.ros.process import (apply_download_policy, interrupt_once, return_freed_memory,
                                 spin)
from vpd_ros.ros.queries import join_queries, parse_one_query, parse_queries, truncation_note
from vpd_ros.ros.worker import InferenceWorker, Job
from vpd_ros_interfaces.msg import Grounding
from vpd_ros_interfaces.srv import Ground, SetQuery

if TYPE_CHECKING:  # imported in configure, after the download policy is in the environment
    from vpd_ros.engine import VPDEngine

#: Service request queue: the default (10) silently drops requests of a burst of callers.
SERVICE_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)
#: Seconds between repeats of the same input warning.
LOG_THROTTLE_S = 5.0
#: Executor threads: frames, services, ground waiters (reentrant), lifecycle/parameters, timer.
EXECUTOR_THREADS = 6
#: Per-frame output topics (relative names) and their types; all use the qos.output profile.
OUTPUTS = {'depth': Image, 'depth/camera_info': CameraInfo, 'mask': Image,
           'grounding': Grounding, 'grounding/marker': Marker, 'points': PointCloud2,
           'depth/colorized': Image, 'mask/overlay': Image}
#: Subscribed topics (relative names); ``image`` becomes ``<image>/compressed`` when compressed.
INPUTS = ('image', 'camera_info', 'query')


class VPDNode(LifecycleNode):
    """Lifecycle node running VPD on a camera stream.

    Parameters are :data:`vpd_ros.ros.params.PARAMETERS`; topics and services are
    :data:`INPUTS`, :data:`OUTPUTS`, ``current_query``, ``/diagnostics``, ``~/set_query`` and
    ``~/ground`` (docs/ros-interface.md describes each).

    Transitions: configure validates parameters, loads the engine and runs one warm-up frame
    (FAILURE with the reason logged when any of it fails); activate subscribes and starts the
    worker; deactivate unsubscribes and stops it; cleanup releases the engine.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('vpd_node', **kwargs)
        declare_parameters(self)
        self.get_logger().info(apply_download_policy(
            bool(self.get_parameter('allow_download').value)))
        self._settings: Dict[str, Any] = parameter_values(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._frames_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._ground_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._stats = FrameStats()
        self._log_limiter = LogLimiter(LOG_THROTTLE_S)
        self._state_label = 'unconfigured'
        self._engine: Optional[VPDEngine] = None
        self._config: Optional[NodeConfig] = None
        self._worker: Optional[InferenceWorker] = None
        self._queries: List[str] = []
        self._queries_lock = threading.Lock()
        self._camera = CameraRays()
        self._qos_warned: set = set()
        self._outputs: Dict[str, Any] = {}
        self._service_handles: List[Any] = []
        self._input_subs: List[Any] = []
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # A steady clock: with use_sim_time and a paused or absent /clock, ROS time stands still
        # but the node keeps working, and its health must still be reported.
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics,
                                                    callback_group=self._timer_group,
                                                    clock=Clock(clock_type=ClockType.STEADY_TIME))

    # --- parameters ---------------------------------------------------------------------------

    def _on_set_parameters(self, params: Sequence[Parameter]) -> SetParametersResult:
        """Reject invalid values with the reason; note when accepted ones take effect."""
        try:
            notes = [f'{p.name} {when}' for p in params
                     if (when := check_value(p.name, p.value)) != RUNTIME]
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self._settings = updated = {**self._settings, **{p.name: p.value for p in params}}
        worker = self._worker
        if worker is not None and 'max_rate' in updated:
            worker.max_rate = float(updated['max_rate'])
        if notes:  # rclpy drops the reason of a successful result: say it in the log
            self.get_logger().info('; '.join(notes))
        return SetParametersResult(successful=True, reason='; '.join(notes))

    # --- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, load the engine and warm it up; FAILURE with the reason."""
        self._settings = parameter_values(self)
        try:
            config = read_config(self._settings)
            start = time.perf_counter()
            from vpd_ros.engine import load_engine  # loads torch and diffusers

            engine = load_engine(config.spec, config.engine)
            engine.warmup(queries=max(1, len(config.default_queries)), iterations=1)
            engine.release_thread_graphs()  # compiled now; the worker records its own graphs
        except Exception as error:  # noqa: BLE001 - any load failure must keep the node alive
            reason = f'configure failed: {type(error).__name__}: {error}'
            self._stats.error('inference_errors', reason)
            self.get_logger().error(reason)
            return TransitionCallbackReturn.FAILURE
        self._engine, self._config = engine, config
        self._queries = list(config.default_queries)
        self._create_outputs(config)
        self._publish_current_query()
        self._state_label = 'inactive'
        source = ('official checkpoints' if config.spec.official
                  else f'weights {config.spec.weights!r}')
        self.get_logger().info(
            f'configured: {source}, tasks {"+".join(engine.tasks)}, device {engine.device}, '
            f'dtype {str(engine.dtype).replace("torch.", "")}, input {engine.input_size}, '
            f'{(time.perf_counter() - start):.1f} s')
        return TransitionCallbackReturn.SUCCESS

    def _create_outputs(self, config: NodeConfig) -> None:
        qos = config.output_qos
        latched = qos_profile('reliable', 1, DurabilityPolicy.TRANSIENT_LOCAL)
        # Lifecycle publishers: while inactive they publish nothing, by construction.
        self._outputs = {name: self.create_lifecycle_publisher(kind, name, qos)
                         for name, kind in OUTPUTS.items()}
        self._outputs['current_query'] = self.create_publisher(String, 'current_query', latched)
        self._service_handles = [
            self.create_service(SetQuery, '~/set_query', self._on_set_query,
                                qos_profile=SERVICE_QOS, callback_group=self._service_group),
            self.create_service(Ground, '~/ground', self._on_ground,
                                qos_profile=SERVICE_QOS, callback_group=self._ground_group),
        ]

    def _destroy_outputs(self) -> None:
        for service in self._service_handles:
            self.destroy_service(service)
        for name, publisher in self._outputs.items():
            if name in OUTPUTS:
                self.destroy_lifecycle_publisher(publisher)
            else:
                self.destroy_publisher(publisher)
        self._service_handles, self._outputs = [], {}

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the camera and start the inference worker."""
        settings = self._settings
        try:
            qos = qos_profile(settings['qos.input.reliability'],
                              int(settings['qos.input.depth']))
            info_qos = qos_profile(settings['qos.input.reliability'], 5)
        except ValueError as error:
            self.get_logger().error(f'activate failed: {error}')
            return TransitionCallbackReturn.FAILURE
        engine, queries = self._engine, max(1, len(self._queries))
        self._worker = InferenceWorker(self._process, self._on_worker_error,
                                       float(settings['max_rate']), stats=self._stats,
                                       serving=lambda: engine.serving(queries))
        self._worker.start()
        self._qos_warned = set()
        compressed = settings['image_transport'] == 'compressed'
        topic = self.resolve_topic_name('image') + ('/compressed' if compressed else '')
        image_sub = self.create_subscription(
            CompressedImage if compressed else Image, topic, self._on_image, qos,
            callback_group=self._frames_group, event_callbacks=self._qos_events(topic, settings))
        self._camera.rectified = 'image_rect' in topic  # image_geometry: project with P
        info_topic = self.resolve_topic_name('camera_info')
        self._input_subs = [
            image_sub,
            self.create_subscription(CameraInfo, 'camera_info', self._camera.update, info_qos,
                                     callback_group=self._frames_group,
                                     event_callbacks=self._qos_events(info_topic, settings)),
            self.create_subscription(String, 'query', self._on_query_topic, 10,
                                     callback_group=self._service_group),
        ]
        output_qos = self._config.output_qos if self._config is not None else None
        self.get_logger().info(
            f'input QoS: reliability {settings["qos.input.reliability"]}, durability volatile, '
            f'keep last {int(settings["qos.input.depth"])}; output QoS: reliability '
            f'{output_qos.reliability.name if output_qos else "n/a"}, durability '
            f'volatile (current_query transient local)')
        self._state_label = 'active'
        self.get_logger().info(f'active: image {topic} ({settings["image_transport"]}), '
                               f'queries {self._standing()}')
        return super().on_activate(state)

    def _qos_events(self, topic: str, settings: Dict[str, Any]) -> SubscriptionEventCallbacks:
        """Return event callbacks that warn once per activation about an incompatible publisher.

        A publisher whose QoS cannot match (typically best_effort against this reliable
        subscription) delivers nothing and DDS says so only through this event.
        """
        def on_incompatible(info: Any) -> None:
            if topic in self._qos_warned:
                return
            self._qos_warned.add(topic)
            self.get_logger().warning(
                f'incompatible QoS on {topic}: a publisher cannot match policy '
                f'{qos_policy_name_from_kind(info.last_policy_kind)} of this subscription '
                f'(reliability '
                f'{settings["qos.input.reliability"]}); nothing arrives from it until one side '
                'changes (parameter qos.input.reliability)')
        return SubscriptionEventCallbacks(incompatible_qos=on_incompatible)

    def _stop_worker(self, reason: str) -> None:
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        self._input_subs = []
        worker, self._worker = self._worker, None
        if worker is not None and not worker.stop(timeout=30.0, reason=reason):
            self.get_logger().warning('the inference thread did not stop within 30 s')

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker (a frame in flight finishes first)."""
        self._stop_worker('node deactivated')
        marker_pub = self._outputs.get('grounding/marker')
        if marker_pub is not None:
            marker_pub.publish(delete_all_marker(Header()))
        self._state_label = 'inactive'
        self.get_logger().info('inactive')
        return super().on_deactivate(state)

    def _release(self) -> None:
        self._destroy_outputs()
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.release()
            return_freed_memory()
        self._camera.clear()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the engine (device memory) and the outputs."""
        self._release()
        self._state_label = 'unconfigured'
        self.get_logger().info('cleaned up: engine released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything from any state."""
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured: stop and release."""
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the worker and release the engine (shutdown, errors, process exit)."""
        self._stop_worker('node shutting down')
        self._release()
        self._state_label = 'finalized'

    def autostart(self) -> bool:
        """Configure and activate; return True when both succeeded."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    # --- queries ------------------------------------------------------------------------------

    def _standing(self) -> List[str]:
        with self._queries_lock:
            return list(self._queries)

    def _publish_current_query(self) -> None:
        publisher = self._outputs.get('current_query')
        if publisher is not None:
            publisher.publish(String(data=join_queries(self._standing())))

    def _set_standing(self, text: str) -> Tuple[bool, str]:
        """Parse and apply standing queries; return (success, message)."""
        engine = self._engine
        try:
            queries = parse_queries(text, int(self._settings['max_query_length']))
        except ValueError as error:
            return False, str(error)
        if queries and (engine is None or 'refer' not in engine.tasks):
            return False, 'queries need a referring model, but tasks has no refer'
        with self._queries_lock:
            changed, self._queries = queries != self._queries, queries
        if changed:
            self._publish_current_query()
            marker_pub = self._outputs.get('grounding/marker')
            if marker_pub is not None:
                marker_pub.publish(delete_all_marker(Header()))
        if not queries:
            return True, 'query cleared: depth only'
        return True, f'standing queries: {join_queries(queries)}' + truncation_note(
            queries, engine.truncated(queries), engine.token_length)

    def _on_set_query(self, request: SetQuery.Request,
                      response: SetQuery.Response) -> SetQuery.Response:
        response.success, response.message = self._set_standing(request.query)
        return response

    def _on_query_topic(self, msg: String) -> None:
        ok, message = self._set_standing(msg.data)
        log = self.get_logger().info if ok else self.get_logger().warning
        log(f'query topic: {message}')

    def _on_ground(self, request: Ground.Request, response: Ground.Response) -> Ground.Response:
        """Ground one query on the next (or latest) frame; blocks this reentrant callback only."""
        response.success = False
        worker, engine = self._worker, self._engine
        if worker is None or engine is None:
            response.message = f'node is not active (state {self._state_label})'
            return response
        if 'refer' not in engine.tasks:
            response.message = 'grounding needs a referring model, but tasks has no refer'
            return response
        if not math.isfinite(request.timeout):
            response.message = (f'timeout {request.timeout!r} must be a finite number of seconds '
                                '(<= 0 for the default)')
            return response
        try:
            query = parse_one_query(request.query, int(self._settings['max_query_length']))
            pending = worker.request(query, request.use_latest)
        except (ValueError, RuntimeError) as error:
            response.message = str(error)
            return response
        timeout = request.timeout if request.timeout > 0 else self._settings['ground_timeout']
        response.message = worker.wait(pending, timeout)
        if response.message:
            return response
        response.success, response.message, response.result = True, 'ok', pending.result
        return response

    # --- frames -------------------------------------------------------------------------------

    def _on_image(self, msg: Any) -> None:
        worker = self._worker
        if worker is not None:
            worker.submit(msg)  # counts received and dropped frames in self._stats

    # rclpy fixes each call site's severity, so warnings and errors need their own lines.
    def _warn_limited(self, text: str) -> None:
        """Log a warning unless the same text was logged within LOG_THROTTLE_S seconds."""
        if self._log_limiter.allow(text):
            self.get_logger().warning(text)

    def _error_limited(self, text: str) -> None:
        """Log an error unless the same text was logged within LOG_THROTTLE_S seconds."""
        if self._log_limiter.allow(text):
            self.get_logger().error(text)

    def _process(self, job: Job) -> None:
        """Decode, run the engine once for all queries, encode and publish (worker thread)."""
        settings, engine = self._settings, self._engine
        if engine is None:
            raise RuntimeError('engine released')
        subscribed = {name for name, publisher in self._outputs.items()
                      if name in OUTPUTS and publisher.get_subscription_count() > 0}
        if settings['lazy'] and not job.requests and not subscribed:
            self._stats.count('idle')  # nobody needs this frame: skip the model entirely
            return
        t: Dict[str, float] = {}
        start = time.perf_counter()
        header = job.frame.msg.header
        try:
            rgb = decode_image(job.frame.msg, int(settings['max_image_pixels']))
        except ImageDecodeError as error:
            text = f'image refused: {error}'
            self._stats.error('decode_errors', text)
            self._warn_limited(text)
            for request in job.requests:
                request.finish(error=text)
            return
        t['decode'] = (time.perf_counter() - start) * 1e3
        size = (rgb.shape[1], rgb.shape[0])
        try:
            info, rays = self._camera.rays(size)
        except ValueError as error:
            text = f'camera_info unusable, no 3D output: {error}'
            self._stats.error('camera_info_errors', text)
            self._warn_limited(text)
            info, rays = None, None
        standing = [] if job.replay else self._standing()
        queries = list(dict.fromkeys(standing + [r.query for r in job.requests]))
        engine.set_caption(settings['depth_caption'] or None)
        prediction = engine.predict(
            rgb, queries, depth='depth' in engine.tasks,
            mask_threshold=engine_value('mask_threshold', settings['mask_threshold']),
            scene=engine_value('scene', settings['scene']))
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
            publisher = self._outputs.get(name)
            if publisher is not None:
                publisher.publish(msg)
        t['publish'] = (time.perf_counter() - mark) * 1e3
        t['total'] = (time.perf_counter() - start) * 1e3
        if not job.replay:
            self._stats.frame(t)

    def _on_worker_error(self, job: Job, error: BaseException) -> None:
        if not self.context.ok():  # a signal shut ROS down mid-frame: shutdown is not an error
            self.get_logger().debug(f'frame abandoned at shutdown: {error}')
            return
        text = f'inference failed, frame dropped: {type(error).__name__}: {error}'
        self._stats.error('inference_errors', text)
        self._error_limited(text)

    # --- diagnostics --------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        if not self.context.ok():  # a signal shut ROS down; the node is about to close
            return
        engine = self._engine
        extra = {'queries': join_queries(self._standing())}
        hardware = 'none'
        if engine is not None:
            hardware = str(engine.device)
            extra.update({f'device_memory_{kind}_mb': f'{mb:.1f}'
                          for kind, mb in engine.device_memory_mb().items()})
        self._diagnostics_pub.publish(diagnostic_array(
            self._stats.report(), self.get_clock().now().to_msg(),
            f'{self.get_name()}: inference', hardware, self._state_label, extra))


def main(args: Optional[List[str]] = None) -> NoReturn:
    """Run ``vpd_node`` until SIGINT/SIGTERM; end the process with 0 after a clean shutdown.

    Everything the node holds is released explicitly below; the interpreter's own teardown of
    torch, diffusers and transformers would then take another 1.5-3 s on a small CPU, so the
    process ends with ``os._exit`` and meets the 2 s that launch or systemd allow on SIGINT.
    An exception escaping the shutdown propagates normally (non-zero exit, traceback).
    """
    stopping = threading.Event()
    interrupt_once(stopping)
    rclpy.init(args=args)
    node = VPDNode()
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)
    try:
        if node.get_parameter('autostart').value and not node.autostart():
            node.get_logger().error('autostart did not reach active; the node stays up for '
                                    'lifecycle requests')
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except _rclpy.RCLError:
        # SIGTERM's handler can invalidate the context while the executor builds a wait set.
        if rclpy.ok():
            raise
    finally:
        stopping.set()
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == '__main__':
    main()
