# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Child process for the DDS tests: serve ``~/set_query`` (vpd_ros_interfaces/SetQuery).

Accepts a non-blank query (reply names it) and rejects a blank one, so that a caller in another
process can check both answers. Prints ``READY <service>`` once the service exists.
"""

import argparse

import rclpy

from vpd_ros_interfaces.srv import SetQuery

from ros_child import child_node


def main() -> None:
    """Serve SetQuery until SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--node-name', required=True)
    args = parser.parse_args()

    def handle(request: SetQuery.Request, response: SetQuery.Response) -> SetQuery.Response:
        query = request.query.strip()
        response.success = bool(query)
        response.message = f'query set to {query!r}' if query else 'query must not be blank'
        print(f'REQUEST {request.query!r} -> {response.success}', flush=True)
        return response

    with child_node(args.node_name) as node:
        service = node.create_service(SetQuery, '~/set_query', handle)
        print(f'READY {node.resolve_service_name(service.srv_name)}', flush=True)
        rclpy.spin(node)


if __name__ == '__main__':
    main()
