# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""VPD and EVP in PyTorch on diffusers/transformers: presets, models, loaders. No ROS here."""

from .depth import VPDDepth, VPDDepthOutput
from .evp_depth import EVPDepth
from .evp_refer import EVPRefer
from .presets import PRESETS, get_preset
from .pretrained import CheckpointMismatchError
from .refer import VPDRefer, VPDReferOutput
from .text import TextFeatures, load_tokenizer, tokenize

__all__ = ['CheckpointMismatchError', 'EVPDepth', 'EVPRefer', 'PRESETS', 'TextFeatures',
           'VPDDepth', 'VPDDepthOutput', 'VPDRefer', 'VPDReferOutput', 'get_preset',
           'load_tokenizer', 'tokenize']
