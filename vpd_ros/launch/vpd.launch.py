# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Launch vpd_node (and optionally rviz2) with a parameters file, remapped camera topics.

Example:
    ros2 launch vpd_ros vpd.launch.py image_topic:=/camera/color/image_raw \
        camera_info_topic:=/camera/color/camera_info rviz:=true
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and start vpd_node, plus rviz2 when ``rviz`` is true."""
    share = get_package_share_directory('vpd_ros')
    namespace = LaunchConfiguration('namespace')
    params_file = LaunchConfiguration('params_file')
    use_sim_time = LaunchConfiguration('use_sim_time')
    autostart = LaunchConfiguration('autostart')
    log_level = LaunchConfiguration('log_level')
    image_topic = LaunchConfiguration('image_topic')
    camera_info_topic = LaunchConfiguration('camera_info_topic')
    rviz = LaunchConfiguration('rviz')
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
                              description='start rviz2 with rviz/vpd.rviz'),
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
        Node(
            condition=IfCondition(rviz),
            package='rviz2',
            executable='rviz2',
            name='rviz2',
            namespace=namespace,
            output='screen',
            arguments=['-d', os.path.join(share, 'rviz', 'vpd.rviz')],
            parameters=[{'use_sim_time': ParameterValue(use_sim_time, value_type=bool)}],
        ),
    ])
