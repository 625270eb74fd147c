# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The official depth test-time augmentation: shifted square windows plus horizontal flips.

For a (1, 3, H, W) image with W > H, ``shift_size`` windows of H x H are spread evenly from
x = 0 to x = W - H; each window and its mirror image are predicted in one batch, the flip
is undone and averaged, and the windows are stitched with overlaps averaged (VPD depth/test.py).
"""

from __future__ import annotations

from typing import Callable

import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]


def shift_window_flip(predict: Predictor, image: torch.Tensor, shift_size: int = 2,
                      flip: bool = True) -> torch.Tensor:
    """Return the TTA average of ``predict`` over windows (and flips) of one image.

    Args:
        predict: maps (N, 3, H, H) to (N, C, H, H).
        image: (1, 3, H, W) with W >= H.
        shift_size: number of windows (2 in the official NYUv2 test).
        flip: also predict the horizontally flipped windows.
    """
    b, _, h, w = image.shape
    if b != 1 or w < h:
        raise ValueError(f'shift-window TTA needs one image with W >= H, got {tuple(image.shape)}')
    if shift_size < 1 or (shift_size > 1 and w == h):
        shift_size = 1
    # Official: i * ((W - H) // (n - 1)); rounding instead also covers the right edge when
    # (W - H) is not divisible by n - 1 (identical for the official 480 x 640, n = 2).
    starts = [round(i * (w - h) / (shift_size - 1)) if shift_size > 1 else 0
              for i in range(shift_size)]
    batch = torch.cat([image[..., s:s + h] for s in starts], dim=0)
    if flip:
        batch = torch.cat([batch, torch.flip(batch, [3])], dim=0)
    pred = predict(batch)
    if flip:
        half = pred.shape[0] // 2
        pred = (pred[:half] + torch.flip(pred[half:], [3])) / 2.0
    out = torch.zeros(1, pred.shape[1], h, w, dtype=pred.dtype, device=pred.device)
    count = torch.zeros(1, 1, h, w, dtype=pred.dtype, device=pred.device)
    for i, s in enumerate(starts):
        out[..., s:s + h] += pred[i:i + 1]
        count[..., s:s + h] += 1
    return out / count
