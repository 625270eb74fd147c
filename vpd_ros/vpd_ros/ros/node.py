# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd_node``: VPD depth and referring segmentation behind a ROS 2 lifecycle node.

The subscription callbacks only hand the newest frame to an :class:`InferenceWorker`; the
model runs on that worker's thread, so services, parameters and lifecycle requests answer
while a frame is in flight. See docs/ros-interface.md for the full interface.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence, Set

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_policy_name_from_kind

try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from vpd_ros.ros.camera import CameraRays
from vpd_ros.ros.caption import CaptionInput
from vpd_ros.ros.diagnostics import FrameStats, diagnostic_array
from vpd_ros.ros.frame_pipeline import FramePipeline
from vpd_ros.ros.messages import delete_all_marker
from vpd_ros.ros.params import (RUNTIME, NodeConfig, check_value, declare_parameters,
                                parameter_values, qos_profile, read_config)
from vpd_ros.ros.process import (apply_download_policy, interrupt_once, return_freed_memory,
                                 spin)
from vpd_ros.ros.queries import join_queries
from vpd_ros.ros.query_services import QueryServices
from vpd_ros.ros.worker import InferenceWorker
from vpd_ros_interfaces.msg import Grounding

if TYPE_CHECKING:  # imported in configure, after the download policy is in the environment
    from vpd_ros.engine import VPDEngine

#: Executor threads: frames, services, ground waiters (reentrant), lifecycle/parameters, timer.
EXECUTOR_THREADS = 6
#: Per-frame output topics (relative names) and their types; all use the qos.output profile.
OUTPUTS = {'depth': Image, 'depth/camera_info': CameraInfo, 'mask': Image,
           'grounding': Grounding, 'grounding/marker': Marker, 'points': PointCloud2,
           'depth/colorized': Image, 'mask/overlay': Image}
#: Subscribed topics (relative or private names); ``image`` becomes ``<image>/compressed``
#: when compressed.
INPUTS = ('image', 'camera_info', 'query', '~/caption')


class VPDNode(LifecycleNode):
    """Lifecycle node running VPD on a camera stream.

    Parameters are :data:`vpd_ros.ros.params.PARAMETERS`; topics and services are
    :data:`INPUTS`, :data:`OUTPUTS`, ``current_query``, ``/diagnostics``, ``~/set_query`` and
    ``~/ground`` (docs/ros-interface.md describes each).

    Transitions: configure validates parameters, loads the engine and runs one warm-up frame
    (FAILURE with the reason logged when any of it fails); activate subscribes and starts the
    worker; deactivate unsubscribes and stops it; cleanup releases the engine.

    ``engine``, ``worker``, ``settings`` (parameter values), ``stats``, ``camera`` and
    ``state_label`` are read by the node's pieces (:class:`QueryServices`,
    :class:`FramePipeline`) on their threads; only the node assigns them.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('vpd_node', **kwargs)
        declare_parameters(self)
        self.get_logger().info(apply_download_policy(
            bool(self.get_parameter('allow_download').value)))
        self.settings: Dict[str, Any] = parameter_values(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._frames_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self.stats = FrameStats()
        self.state_label = 'unconfigured'
        self.engine: Optional[VPDEngine] = None
        self._config: Optional[NodeConfig] = None
        self.worker: Optional[InferenceWorker] = None
        self.camera = CameraRays()
        self.queries = QueryServices(self, MutuallyExclusiveCallbackGroup(),
                                     ReentrantCallbackGroup())
        self._pipeline = FramePipeline(self)
        self._caption = CaptionInput(self)
        self._qos_warned: set = set()
        self._outputs: Dict[str, Any] = {}
        self._input_subs: List[Any] = []
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # A steady clock: with use_sim_time and a paused or absent /clock, ROS time stands still
        # but the node keeps working, and its health must still be reported.
        period = float(self.settings['diagnostic_updater.period'])
        self._diagnostics_timer = self.create_timer(period, self._publish_diagnostics,
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
        self.settings = updated = {**self.settings, **{p.name: p.value for p in params}}
        worker = self.worker
        if worker is not None and 'max_rate' in updated:
            worker.max_rate = float(updated['max_rate'])
        if 'depth_caption' in (p.name for p in params):
            self._caption.note(updated['depth_caption'])
        if notes:  # rclpy drops the reason of a successful result: say it in the log
            self.get_logger().info('; '.join(notes))
        return SetParametersResult(successful=True, reason='; '.join(notes))

    # --- outputs ------------------------------------------------------------------------------

    def subscribed_outputs(self) -> Set[str]:
        """Return the output topics that have a subscriber now."""
        return {name for name, publisher in self._outputs.items()
                if publisher.get_subscription_count() > 0}

    def publish_output(self, name: str, msg: Any) -> None:
        """Publish ``msg`` on output ``name`` (nothing while unconfigured)."""
        publisher = self._outputs.get(name)
        if publisher is not None:
            publisher.publish(msg)

    # --- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, load the engine and warm it up; FAILURE with the reason."""
        self.settings = parameter_values(self)
        try:
            config = read_config(self.settings)
            start = time.perf_counter()
            from vpd_ros.engine import load_engine  # loads torch and diffusers

            # A shipped model's notice goes to the node's log, so /rosout carries it.
            engine = load_engine(config.spec, config.engine, say=self.get_logger().warning)
            engine.warmup(queries=max(1, len(config.default_queries)), iterations=1)
            engine.release_thread_graphs()  # compiled now; the worker records its own graphs
        except Exception as error:  # noqa: BLE001 - any load failure must keep the node alive
            reason = f'configure failed: {type(error).__name__}: {error}'
            self.stats.error('inference_errors', reason)
            self.get_logger().error(reason)
            return TransitionCallbackReturn.FAILURE
        self.engine, self._config = engine, config
        # Lifecycle publishers: while inactive they publish nothing, by construction.
        self._outputs = {name: self.create_lifecycle_publisher(kind, name, config.output_qos)
                         for name, kind in OUTPUTS.items()}
        self.queries.create(config.default_queries)
        self._caption.note(self.settings['depth_caption'])
        self.state_label = 'inactive'
        source = ('official checkpoints' if config.spec.official
                  else f'weights {config.spec.weights!r}')
        self.get_logger().info(
            f'configured: {source}, tasks {"+".join(engine.tasks)}, device {engine.device}, '
            f'dtype {str(engine.dtype).replace("torch.", "")}, input {engine.input_size}, '
            + (f'{config.engine.num_threads} threads, ' if engine.device.type == 'cpu' else '')
            + f'{(time.perf_counter() - start):.1f} s')
        return TransitionCallbackReturn.SUCCESS

    def _destroy_outputs(self) -> None:
        self.queries.destroy()
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the camera and start the inference worker."""
        settings = self.settings
        try:
            qos = qos_profile(settings['qos.input.reliability'],
                              int(settings['qos.input.depth']))
            info_qos = qos_profile(settings['qos.input.reliability'], 5)
        except ValueError as error:
            self.get_logger().error(f'activate failed: {error}')
            return TransitionCallbackReturn.FAILURE
        engine, queries = self.engine, max(1, len(self.queries.standing()))
        self.worker = InferenceWorker(self._pipeline.process, self._pipeline.on_error,
                                      float(settings['max_rate']), stats=self.stats,
                                      serving=lambda: engine.serving(queries))
        self.worker.start()
        self._qos_warned = set()
        compressed = settings['image_transport'] == 'compressed'
        topic = self.resolve_topic_name('image') + ('/compressed' if compressed else '')
        image_sub = self.create_subscription(  # submit counts received and dropped frames
            CompressedImage if compressed else Image, topic, self.worker.submit, qos,
            callback_group=self._frames_group, event_callbacks=self._qos_events(topic, settings))
        self.camera.rectified = 'image_rect' in topic  # image_geometry: project with P
        info_topic = self.resolve_topic_name('camera_info')
        self._input_subs = [
            image_sub,
            self.create_subscription(CameraInfo, 'camera_info', self.camera.update, info_qos,
                                     callback_group=self._frames_group,
                                     event_callbacks=self._qos_events(info_topic, settings)),
            self.queries.subscribe(),
            self._caption.subscribe(),
        ]
        output_qos = self._config.output_qos if self._config is not None else None
        self.get_logger().info(
            f'input QoS: reliability {settings["qos.input.reliability"]}, durability volatile, '
            f'keep last {int(settings["qos.input.depth"])}; output QoS: reliability '
            f'{output_qos.reliability.name if output_qos else "n/a"}, durability '
            f'volatile (current_query transient local)')
        self.state_label = 'active'
        self.get_logger().info(f'active: image {topic} ({settings["image_transport"]}), '
                               f'queries {self.queries.standing()}')
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
        worker, self.worker = self.worker, None
        if worker is not None and not worker.stop(timeout=30.0, reason=reason):
            self.get_logger().warning('the inference thread did not stop within 30 s')

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker (a frame in flight finishes first)."""
        self._stop_worker('node deactivated')
        self.publish_output('grounding/marker', delete_all_marker(Header()))
        self.state_label = 'inactive'
        self.get_logger().info('inactive')
        return super().on_deactivate(state)

    def _release(self) -> None:
        self._destroy_outputs()
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.release()
            return_freed_memory()
        self.camera.clear()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the engine (device memory) and the outputs."""
        self._release()
        self.state_label = 'unconfigured'
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
        self.state_label = 'finalized'

    def autostart(self) -> bool:
        """Configure and activate; return True when both succeeded."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    # --- diagnostics --------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        if not self.context.ok():  # a signal shut ROS down; the node is about to close
            return
        engine = self.engine
        extra = {'queries': join_queries(self.queries.standing())}
        hardware = 'none'
        if engine is not None:
            hardware = str(engine.device)
            extra.update({f'device_memory_{kind}_mb': f'{mb:.1f}'
                          for kind, mb in engine.device_memory_mb().items()})
        self._diagnostics_pub.publish(diagnostic_array(
            self.stats.report(), self.get_clock().now().to_msg(),
            f'{self.get_name()}: inference', hardware, self.state_label, extra))


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
