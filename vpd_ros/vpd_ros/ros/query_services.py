# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's standing queries and the requests on them: ``~/set_query``, ``query``, ``~/ground``.

Standing queries run on every frame and are announced on the latched ``current_query``;
``~/ground`` adds a one-shot query to the next (or the latest) frame and waits for its result
in its own reentrant callback, never in the worker.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

from rclpy.callback_groups import CallbackGroup
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header, String

from vpd_ros.ros.messages import delete_all_marker
from vpd_ros.ros.params import qos_profile
from vpd_ros.ros.queries import join_queries, parse_one_query, parse_queries, truncation_note
from vpd_ros_interfaces.srv import Ground, SetQuery

if TYPE_CHECKING:  # the node imports this module
    from vpd_ros.ros.node import VPDNode

#: Service request queue: the default (10) silently drops requests of a burst of callers.
SERVICE_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)


class QueryServices:
    """Standing queries of ``node`` and its ``~/set_query``, ``~/ground`` and ``query`` handlers.

    ``create`` (configure) makes the ``current_query`` publisher and both services;
    ``subscribe`` (activate) the ``query`` topic; ``destroy`` (cleanup) removes what create made.
    """

    def __init__(self, node: VPDNode, service_group: CallbackGroup,
                 ground_group: CallbackGroup) -> None:
        self._node = node
        self._service_group, self._ground_group = service_group, ground_group
        self._queries: List[str] = []
        self._lock = threading.Lock()
        self._current: Any = None
        self._services: List[Any] = []

    def standing(self) -> List[str]:
        """Return the standing queries (any thread)."""
        with self._lock:
            return list(self._queries)

    def create(self, queries: Sequence[str]) -> None:
        """Start with ``queries``, latch them on ``current_query`` and offer both services."""
        node = self._node
        self._queries = list(queries)
        self._current = node.create_publisher(
            String, 'current_query', qos_profile('reliable', 1, DurabilityPolicy.TRANSIENT_LOCAL))
        self._services = [
            node.create_service(SetQuery, '~/set_query', self._on_set_query,
                                qos_profile=SERVICE_QOS, callback_group=self._service_group),
            node.create_service(Ground, '~/ground', self._on_ground,
                                qos_profile=SERVICE_QOS, callback_group=self._ground_group),
        ]
        self._publish_current()

    def subscribe(self) -> Any:
        """Return a new subscription of the ``query`` topic (standing queries as text)."""
        return self._node.create_subscription(String, 'query', self._on_query_topic, 10,
                                              callback_group=self._service_group)

    def destroy(self) -> None:
        """Remove the services and the ``current_query`` publisher."""
        for service in self._services:
            self._node.destroy_service(service)
        if self._current is not None:
            self._node.destroy_publisher(self._current)
        self._services, self._current = [], None

    def _publish_current(self) -> None:
        publisher: Optional[Any] = self._current
        if publisher is not None:
            publisher.publish(String(data=join_queries(self.standing())))

    def set_standing(self, text: str) -> Tuple[bool, str]:
        """Parse and apply standing queries; return (success, message)."""
        node = self._node
        engine = node.engine
        try:
            queries = parse_queries(text, int(node.settings['max_query_length']))
        except ValueError as error:
            return False, str(error)
        if queries and (engine is None or 'refer' not in engine.tasks):
            return False, 'queries need a referring model, but tasks has no refer'
        with self._lock:
            changed, self._queries = queries != self._queries, queries
        if changed:
            self._publish_current()
            node.publish_output('grounding/marker', delete_all_marker(Header()))
        if not queries:
            return True, 'query cleared: depth only'
        return True, f'standing queries: {join_queries(queries)}' + truncation_note(
            queries, engine.truncated(queries), engine.token_length)

    def _on_set_query(self, request: SetQuery.Request,
                      response: SetQuery.Response) -> SetQuery.Response:
        response.success, response.message = self.set_standing(request.query)
        return response

    def _on_query_topic(self, msg: String) -> None:
        ok, message = self.set_standing(msg.data)
        logger = self._node.get_logger()
        (logger.info if ok else logger.warning)(f'query topic: {message}')

    def _on_ground(self, request: Ground.Request, response: Ground.Response) -> Ground.Response:
        """Ground one query on the next (or latest) frame; blocks this reentrant callback only."""
        node = self._node
        response.success = False
        worker, engine = node.worker, node.engine
        if worker is None or engine is None:
            response.message = f'node is not active (state {node.state_label})'
            return response
        if 'refer' not in engine.tasks:
            response.message = 'grounding needs a referring model, but tasks has no refer'
            return response
        if not math.isfinite(request.timeout):
            response.message = (f'timeout {request.timeout!r} must be a finite number of seconds '
                                '(<= 0 for the default)')
            return response
        try:
            query = parse_one_query(request.query, int(node.settings['max_query_length']))
            pending = worker.request(query, request.use_latest)
        except (ValueError, RuntimeError) as error:
            response.message = str(error)
            return response
        timeout = request.timeout if request.timeout > 0 else node.settings['ground_timeout']
        response.message = worker.wait(pending, timeout)
        if response.message:
            return response
        response.success, response.message, response.result = True, 'ok', pending.result
        return response
