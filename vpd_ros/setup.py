# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Packaging of vpd_ros for colcon (ament_python) and for pip (editable or wheel)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'vpd_ros'


def share_files(pattern: str) -> list[str]:
    """Return the files matching ``pattern`` in a stable order (setup.py runs in its folder)."""
    return sorted(glob(pattern))


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={
        PACKAGE: [
            'weights/**/*.json', 'weights/**/*.md',
            'weights/**/*.safetensors',
            'model/assets/**/*',
        ],
    },
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', share_files('launch/*.py')),
        ('share/' + PACKAGE + '/config', share_files('config/*.yaml')),
        ('share/' + PACKAGE + '/rviz', share_files('rviz/*.rviz')),
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy',
        'opencv-python-headless',
        'pyyaml',
        'safetensors',
        'diffusers>=0.42,<0.43',
        'transformers>=5,<6',
        'torch>=2.1',
        'tqdm',
        'psutil',
    ],
    zip_safe=False,
    maintainer='The vpd_ros Authors',
    maintainer_email='vpd-ros@example.com',
    description='VPD depth and referring segmentation behind a ROS 2 lifecycle node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'vpd_node = vpd_ros.ros.node:main',
            'vpd-ros = vpd_ros.apps.cli:main',
            'vpd_sim_camera = vpd_ros.apps.sim_camera:main',
        ],
    },
)
