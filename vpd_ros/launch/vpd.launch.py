# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Launch vpd_node (and optionally rviz2) with a parameters file, remapped camera topics.

Example:
    ros2 launch vpd_ros vpd.launch.py image_topic:=/camera/color/image_raw \
        camera_info_topic:=/camera/color/camera_info rviz:=true frame:=camera_color_optical_frame

rviz2 is optional (a ros-base robot has none): with ``rviz:=true`` and no rviz2 installed, the
launch says so and starts vpd_node alone. The check runs before any process starts, so a
missing rviz2 can never stop the launch after vpd_node is up and leave it without a parent.
"""

import os
from typing import List

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.action import Action
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

#: Shown when rviz:=true but rviz2 is not installed.
NO_RVIZ = ('rviz:=true but the package rviz2 is not installed (ros-<distro>-rviz2); starting '
           'vpd_node without rviz')


def rviz_actions(context: LaunchContext) -> List[Action]:
    """Return rviz2 with the frame as Fixed Frame, a note when rviz2 is missing, or nothing."""
    if LaunchConfiguration('rviz').perform(context) != 'true':
        return []
    try:
        get_package_share_directory('rviz2')
    except PackageNotFoundError:
        return [LogInfo(msg=NO_RVIZ)]
    share = get_package_share_directory('vpd_ros')
    use_sim_time = LaunchConfiguration('use_sim_time').perform(context) == 'true'
    return [Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        namespace=LaunchConfiguration('namespace').perform(context),
        output='screen',
        arguments=['-d', os.path.join(share, 'rviz', 'vpd.rviz'),
                   '-f', LaunchConfiguration('frame').perform(context)],
        parameters=[{'use_sim_time': use_sim_time}],
    )]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, decide on rviz2, then start vpd_node (and rviz2)."""
    share = get_package_share_directory('vpd_ros')
    namespace = LaunchConfiguration('namespace')
    params_file = LaunchConfiguration('params_file')
    use_sim_time = LaunchConfiguration('use_sim_time')
    autostart = LaunchConfiguration('autostart')
    log_level = LaunchConfiguration('log_level')
    image_topic = LaunchConfiguration('image_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of vpd_node and its topics'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'vpd.yaml'),
                              description='vpd_node parameters (YAML, /** ros__parameters)'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=['true', 'false'],
                              description='use the /clock topic'),
        DeclareLaunchArgument('autostart', default_value='true', choices=['true', 'false'],
                              description='configure and activate vpd_node at start'),
        DeclareLaunchArgument('log_level', default_value='info',
                              choices=['debug', 'info', 'warn', 'error', 'fatal'],
                              description='vpd_node log level'),
        DeclareLaunchArgument('image_topic', default_value='image',
                              description='camera image (the base name when compressed)'),
        DeclareLaunchArgument('camera_info_topic', default_value='camera_info',
                              description='camera_info of the image'),
        DeclareLaunchArgument('rviz', default_value='false', choices=['true', 'false'],
                              description='start rviz2 with rviz/vpd.rviz (skipped with a note '
                                          'when rviz2 is not installed)'),
        DeclareLaunchArgument('frame', default_value='camera_optical_frame',
                              description="rviz Fixed Frame: the camera's optical frame (the "
                                          'frame_id of its images, e.g. '
                                          'camera_color_optical_frame on a RealSense)'),
        OpaqueFunction(function=rviz_actions),
        Node(
            package='vpd_ros',
            executable='vpd_node',
            name='vpd_node',
            namespace=namespace,
            output='screen',
            emulate_tty=True,
            parameters=[params_file, {
                'use_sim_time': ParameterValue(use_sim_time, value_type=bool),
                'autostart': ParameterValue(autostart, value_type=bool),
            }],
            remappings=[('image', image_topic), ('camera_info', camera_info_topic)],
            arguments=['--ros-args', '--log-level', log_level],
        ),
    ])
