# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Debug pictures for people: colourised depth, mask overlays with the query, image grids.

Pure numpy and OpenCV, no ROS. Everything returns (H, W, 3) uint8 BGR, the layout OpenCV
draws in and the node publishes as ``bgr8``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vpd_ros.engine.geometry import valid_depth

#: BGR colours used in turn for masks when the caller gives none (colour-blind friendly).
DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 159, 230),  # orange
    (233, 180, 86),  # sky blue
    (115, 158, 0),  # bluish green
    (66, 228, 240),  # yellow
    (178, 114, 0),  # blue
    (0, 94, 213),  # vermillion
    (167, 121, 204),  # reddish purple
)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colorize_depth(
    depth: np.ndarray, min_m: float | None = None, max_m: float | None = None
) -> np.ndarray:
    """Map (H, W) depth in metres to (H, W, 3) uint8 BGR with the turbo colormap.

    Near is red, far is blue; values outside [min_m, max_m] are clipped; NaN, inf and
    <= 0 are black. A bound left as None is taken from the 2nd / 98th percentile of the
    valid depth, so one stray far pixel does not wash the picture out.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    valid = valid_depth(depth)
    if min_m is None or max_m is None:
        auto = np.percentile(depth[valid], [2.0, 98.0]) if valid.any() else (0.0, 1.0)
        min_m = float(auto[0]) if min_m is None else min_m
        max_m = float(auto[1]) if max_m is None else max_m
    if not max_m > min_m:
        raise ValueError(f"max_m must be greater than min_m, got min_m={min_m}, max_m={max_m}")
    near = (max_m - np.where(valid, depth, max_m)) / (max_m - min_m)
    levels = np.clip(near * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    out = cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)
    out[~valid] = 0
    return out


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Return a uint8 (H, W) grey or (H, W, 3) BGR image as (H, W, 3) BGR."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise ValueError(
            f"image must be uint8 (H, W) or (H, W, 3), got {image.shape} {image.dtype}")
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def _draw_label(image: np.ndarray, text: str, org: tuple[int, int], color: Sequence[int]) -> None:
    """Draw ``text`` on a filled box of ``color`` whose bottom-left corner is ``org``, in place.

    The box is shifted to stay inside the image, so a label at row 0 hangs below it.
    """
    scale = max(0.4, image.shape[0] / 960.0)
    thickness = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    box_w, box_h = tw + 4, th + base + 4
    h, w = image.shape[:2]
    x = min(max(org[0], 0), max(w - box_w, 0))
    y = min(max(org[1] - box_h, 0), max(h - box_h, 0))
    cv2.rectangle(image, (x, y), (x + box_w, y + box_h), tuple(int(c) for c in color), -1)
    text_color = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y + th + 2), _FONT, scale, text_color, thickness, cv2.LINE_AA)


def overlay_masks(
    rgb: np.ndarray,
    masks: Sequence[np.ndarray],
    labels: Sequence[str],
    colors: Sequence[Sequence[int]] | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """Tint each mask over the image, outline it and write its label (the query) above it.

    Args:
        rgb: (H, W, 3) uint8 RGB camera image.
        masks: (H, W) bool masks, one per label.
        labels: text per mask, e.g. the referring query and its score.
        colors: BGR colour per mask; defaults to :data:`DEFAULT_COLORS` in turn.
        alpha: tint opacity in [0, 1].

    Returns:
        (H, W, 3) uint8 BGR. An empty mask still gets its label, in the top-left corner.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if len(masks) != len(labels):
        raise ValueError(f"got {len(masks)} masks but {len(labels)} labels")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colors = DEFAULT_COLORS if colors is None else colors
    if len(colors) == 0:
        raise ValueError("colors must not be empty")
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for i, (mask, label) in enumerate(zip(masks, labels)):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != out.shape[:2]:
            raise ValueError(f"mask {i} shape {mask.shape} differs from image {out.shape[:2]}")
        color = np.asarray(colors[i % len(colors)], dtype=np.float32)
        out[mask] = (out[mask] * (1.0 - alpha) + color * alpha + 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        bgr = tuple(int(c) for c in color)
        cv2.drawContours(out, contours, -1, bgr, max(1, out.shape[0] // 240))
        rows, cols = np.nonzero(mask)
        org = (int(cols.min()), int(rows.min())) if rows.size else (0, 0)
        _draw_label(out, label, org, bgr)
    return out


def side_by_side(
    images: Sequence[np.ndarray], titles: Sequence[str] | None = None
) -> np.ndarray:
    """Place images left to right at the first image's height, each with an optional title.

    Args:
        images: uint8 (H, W) grey or (H, W, 3) BGR images; others are resized to the first
            one's height keeping their aspect ratio.
        titles: one caption per image, drawn in its top-left corner; None for none.

    Returns:
        (H, sum of widths, 3) uint8 BGR.
    """
    if len(images) == 0:
        raise ValueError("images must not be empty")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    height = np.asarray(images[0]).shape[0]
    panels = []
    for i, image in enumerate(images):
        panel = _as_bgr(image)
        h, w = panel.shape[:2]
        if h != height:
            size = (max(1, round(w * height / h)), height)
            panel = cv2.resize(panel, size, interpolation=cv2.INTER_AREA)
        else:
            panel = panel.copy()
        if titles is not None:
            _draw_label(panel, titles[i], (0, 0), (32, 32, 32))
        panels.append(panel)
    return np.concatenate(panels, axis=1)
