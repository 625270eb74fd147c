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


def depth_range(
    depth: np.ndarray, min_m: float | None = None, max_m: float | None = None
) -> tuple[float, float]:
    """Return the (min_m, max_m) a depth picture shows; a bound left as None is automatic.

    Automatic bounds are the 2nd / 98th percentile of the valid depth, so one stray far pixel
    does not wash the picture out.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    if min_m is None or max_m is None:
        valid = valid_depth(depth)
        lo, hi = np.percentile(depth[valid], [2.0, 98.0]) if valid.any() else (0.0, 1.0)
        if min_m is None and max_m is None:  # flat depth (one pixel, a wall) still gets a range
            hi = max(hi, lo + 0.1)
        min_m = float(lo) if min_m is None else min_m
        max_m = float(hi) if max_m is None else max_m
    if not max_m > min_m:
        raise ValueError(f"max_m must be greater than min_m, got min_m={min_m}, max_m={max_m}")
    return float(min_m), float(max_m)


def colorize_depth(
    depth: np.ndarray, min_m: float | None = None, max_m: float | None = None
) -> np.ndarray:
    """Map (H, W) depth in metres to (H, W, 3) uint8 BGR with the turbo colormap.

    Near is red, far is blue; values outside [min_m, max_m] are clipped; NaN, inf and
    <= 0 are black. Bounds left as None come from :func:`depth_range`.
    """
    min_m, max_m = depth_range(depth, min_m, max_m)
    depth = np.asarray(depth, dtype=np.float32)
    valid = valid_depth(depth)
    out = cv2.applyColorMap(_depth_levels(np.where(valid, depth, max_m), min_m, max_m),
                            cv2.COLORMAP_TURBO)
    out[~valid] = 0
    return out


def _depth_levels(depth: np.ndarray, min_m: float, max_m: float) -> np.ndarray:
    """Return uint8 colormap levels: 255 at min_m (near, red), 0 at max_m (far, blue)."""
    near = (max_m - depth) / (max_m - min_m)
    return np.clip(near * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def _tick_step(span: float, ticks: int = 5) -> float:
    """Return a round step (1, 2 or 5 x 10^k metres) giving about ``ticks`` ticks over span."""
    raw = span / ticks
    power = 10.0 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw))


def depth_colorbar(height: int, min_m: float, max_m: float) -> np.ndarray:
    """Return a (height, w, 3) BGR colour bar for :func:`colorize_depth`, ticks in metres.

    Far (max_m) is at the top, near (min_m) at the bottom, as on a map legend.
    """
    if not max_m > min_m:
        raise ValueError(f"max_m must be greater than min_m, got min_m={min_m}, max_m={max_m}")
    scale = max(0.35, height / 960.0)
    thickness = max(1, round(scale * 2))
    step = _tick_step(max_m - min_m)
    decimals = max(0, -int(np.floor(np.log10(step))))
    ticks = np.arange(np.ceil(min_m / step) * step, max_m + 1e-9, step)
    texts = [f"{t:.{decimals}f} m" for t in ticks]
    text_w = max(cv2.getTextSize(t, _FONT, scale, thickness)[0][0] for t in texts + ["m"])
    bar_w = max(8, height // 24)
    tick_w = max(3, bar_w // 3)
    out = np.full((height, bar_w + tick_w + text_w + 12, 3), 255, np.uint8)
    rows = max_m - (np.arange(height, dtype=np.float32) + 0.5) / height * (max_m - min_m)
    levels = _depth_levels(rows, min_m, max_m)[:, None].repeat(bar_w, axis=1)
    out[:, 4:4 + bar_w] = cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)
    text_h = cv2.getTextSize("0", _FONT, scale, thickness)[0][1]
    for tick, text in zip(ticks, texts):
        y = int(round((max_m - tick) / (max_m - min_m) * (height - 1)))
        cv2.line(out, (4 + bar_w, y), (4 + bar_w + tick_w, y), (0, 0, 0), thickness)
        baseline = min(max(y + text_h // 2, text_h + 1), height - 2)
        cv2.putText(out, text, (6 + bar_w + tick_w, baseline), _FONT, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return out


def depth_picture(
    depth: np.ndarray, min_m: float | None = None, max_m: float | None = None
) -> np.ndarray:
    """Return :func:`colorize_depth` with its colour bar in metres on the right (BGR uint8)."""
    min_m, max_m = depth_range(depth, min_m, max_m)
    image = colorize_depth(depth, min_m, max_m)
    return np.concatenate([image, depth_colorbar(image.shape[0], min_m, max_m)], axis=1)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Return a uint8 (H, W) grey or (H, W, 3) BGR image as (H, W, 3) BGR."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise ValueError(
            f"image must be uint8 (H, W) or (H, W, 3), got {image.shape} {image.dtype}")
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


Box = tuple[int, int, int, int]  # x, y, width, height


def _label_style(image_height: int) -> tuple[float, int]:
    """Return the (font scale, thickness) of labels on an image of this height."""
    scale = max(0.4, image_height / 960.0)
    return scale, max(1, round(scale * 2))


def _label_size(text: str, image_height: int) -> tuple[int, int]:
    """Return the (width, height) of the filled box :func:`_draw_label` draws for text."""
    scale, thickness = _label_style(image_height)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    return tw + 4, th + base + 4


def _draw_label(image: np.ndarray, text: str, corner: tuple[int, int],
                color: Sequence[int]) -> None:
    """Draw ``text`` on a filled box of ``color`` whose top-left corner is ``corner``, in place."""
    scale, thickness = _label_style(image.shape[0])
    box_w, box_h = _label_size(text, image.shape[0])
    (_, th), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = corner
    cv2.rectangle(image, (x, y), (x + box_w - 1, y + box_h - 1), tuple(int(c) for c in color), -1)
    text_color = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y + th + 2), _FONT, scale, text_color, thickness, cv2.LINE_AA)


def _overlaps(a: Box, b: Box) -> bool:
    """Return True when two boxes share a pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _box_at(center: tuple[int, int], size: tuple[int, int], shape: tuple[int, ...]) -> Box:
    """Return the box of ``size`` centred on (x, y), moved inside an image of ``shape``."""
    w, h = size
    x = min(max(center[0] - w // 2, 0), max(shape[1] - w, 0))
    y = min(max(center[1] - h // 2, 0), max(shape[0] - h, 0))
    return x, y, w, h


def place_label(mask: np.ndarray, size: tuple[int, int], taken: Sequence[Box]) -> Box:
    """Return where a label of ``size`` (w, h) goes for ``mask``, clear of the ``taken`` boxes.

    Preferred: centred on the mask's most interior points (largest distance to its edge), the
    box's centre on the mask; else a free spot covering part of the mask, nearest its middle;
    else any free spot nearest the mask (the top-left corner for an empty mask); overlapping
    only when no free spot is left in the image.
    """
    h, w = mask.shape
    candidates: list[tuple[int, int]] = []
    if mask.any():
        inner = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        rows, cols = np.nonzero(mask)
        order = np.argsort(-inner[rows, cols], kind="stable")
        pick = order[:: max(1, order.size // 256)]
        candidates = [(int(cols[i]), int(rows[i])) for i in pick]
        target = (int(cols[order[0]]), int(rows[order[0]]))
    else:
        target = (0, 0)
    for center in candidates:
        box = _box_at(center, size, mask.shape)
        box_center = (box[0] + box[2] // 2, box[1] + box[3] // 2)
        if mask[min(box_center[1], h - 1), min(box_center[0], w - 1)] and not any(
                _overlaps(box, t) for t in taken):
            return box
    step = max(2, size[1] // 2)
    free = [(x, y, size[0], size[1])
            for y in range(0, max(h - size[1], 0) + 1, step)
            for x in range(0, max(w - size[0], 0) + 1, step)]
    free = [b for b in free if not any(_overlaps(b, t) for t in taken)]
    if not free:
        return _box_at(target, size, mask.shape)
    area = cv2.integral(mask.astype(np.uint8))  # mask pixels under a box in O(1)

    def covers(b: Box) -> bool:
        x0, y0, x1, y1 = b[0], b[1], min(b[0] + b[2], w), min(b[1] + b[3], h)
        return area[y1, x1] - area[y0, x1] - area[y1, x0] + area[y0, x0] > 0

    return min(free, key=lambda b: (not covers(b), (b[0] + b[2] // 2 - target[0]) ** 2
                                    + (b[1] + b[3] // 2 - target[1]) ** 2))


def label_boxes(masks: Sequence[np.ndarray], labels: Sequence[str]) -> list[Box]:
    """Return the (x, y, w, h) box of each mask's label, in order, none overlapping another.

    Smaller masks choose first: they have the fewest places to hold a label.
    """
    masks = [np.asarray(m, dtype=bool) for m in masks]
    boxes: dict[int, Box] = {}
    for i in sorted(range(len(masks)), key=lambda i: int(masks[i].sum()) or masks[i].size):
        size = _label_size(labels[i], masks[i].shape[0])
        boxes[i] = place_label(masks[i], size, list(boxes.values()))
    return [boxes[i] for i in range(len(masks))]


def overlay_masks(
    rgb: np.ndarray,
    masks: Sequence[np.ndarray],
    labels: Sequence[str],
    colors: Sequence[Sequence[int]] | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """Tint each mask over the image, outline it and write its label (the query) on it.

    Labels never overlap each other while the image has room (see :func:`place_label`).

    Args:
        rgb: (H, W, 3) uint8 RGB camera image.
        masks: (H, W) bool masks, one per label.
        labels: text per mask, e.g. the referring query and its score.
        colors: BGR colour per mask; defaults to :data:`DEFAULT_COLORS` in turn.
        alpha: tint opacity in [0, 1].

    Returns:
        (H, W, 3) uint8 BGR. An empty mask still gets its label, near the top-left corner.
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
    bools, bgrs = [], []
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
        bools.append(mask)
        bgrs.append(bgr)
    for label, bgr, box in zip(labels, bgrs, label_boxes(bools, labels)):  # after all tints
        _draw_label(out, label, box[:2], bgr)
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
