# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Conversions between ROS 2 messages and numpy arrays: the only code that touches byte layouts.

Decoders validate every field a sender can get wrong (encoding, size, step, data length) and
raise :class:`ImageDecodeError` with the reason, so the node can log it and drop the frame.
Encoders fill messages with one bulk copy: ``array.array('B')`` is assigned directly to the
``uint8[]`` fields, which skips rosidl's per-element checks.

Decoding is a small numpy implementation rather than ``rosbags.image``: that library ignores
``step`` (padded rows decode as sheared images), does not check the data length, and
``assert``s on a corrupt CompressedImage, all of which a camera seam must handle.
"""

from __future__ import annotations

import array
import sys

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from vpd_ros.engine.camera_model import CameraModel, camera_model
from vpd_ros.engine.geometry import backproject, sample_mask

#: Default cap on decoded pixels (8K UHD); larger frames are refused before any copy.
DEFAULT_MAX_PIXELS = 7680 * 4320

# encoding -> (bytes per pixel, channels, OpenCV conversion to RGB or None for a plain copy)
_COLOR_ENCODINGS: dict[str, tuple[int, int, int | None]] = {
    "rgb8": (3, 3, None),
    "bgr8": (3, 3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, 4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, 4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, 1, cv2.COLOR_GRAY2RGB),
    "mono16": (2, 1, cv2.COLOR_GRAY2RGB),
}
_DEPTH_ENCODINGS = frozenset({"16UC1", "32FC1", "64FC1", "16SC1", "32SC1"})
_NATIVE_BIG_ENDIAN = sys.byteorder == "big"

_POINTFIELD_DTYPES = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


class ImageDecodeError(ValueError):
    """A camera message that cannot be turned into an RGB image; the message says why."""


def _bytes_array(buffer: np.ndarray) -> array.array:
    """Return the bytes of a C-contiguous array as ``array.array('B')`` (one copy)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(buffer).reshape(-1).view(np.uint8).data)
    return out


def _mono16_to_8(grey: np.ndarray) -> np.ndarray:
    """Scale 16-bit grey to 8 bits by its significant bit depth, rounded up to an even count.

    Many 16-bit cameras carry 10, 12 or 14 bits; dividing by 257 would leave their images
    nearly black. Shifting by (bits - 8) uses the full 8-bit range for such data and keeps
    the scale fixed while the frame's maximum stays within the same bit depth.
    """
    bits = max(8, int(grey.max()).bit_length())
    bits += bits % 2
    return (grey >> (bits - 8)).astype(np.uint8)


def image_to_rgb(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` to a new (H, W, 3) uint8 RGB array.

    Supports rgb8, bgr8, rgba8, bgra8 (alpha dropped), mono8 and mono16 (grey replicated to
    three channels; mono16 scaled as in :func:`_mono16_to_8`, byte order from
    ``is_bigendian``). Row padding (``step`` > width * bytes per pixel) is removed.

    Raises:
        ImageDecodeError: depth or unknown encoding, zero size, more than ``max_pixels``
            pixels, ``step`` too small, or a data length other than step * height.
    """
    enc, width, height, step = msg.encoding, int(msg.width), int(msg.height), int(msg.step)
    if enc in _DEPTH_ENCODINGS:
        raise ImageDecodeError(
            f"depth encoding sent as a camera image: {enc!r}; the image topic needs one of "
            f"{sorted(_COLOR_ENCODINGS)}"
        )
    if enc not in _COLOR_ENCODINGS:
        raise ImageDecodeError(
            f"unsupported image encoding {enc!r}; supported: {sorted(_COLOR_ENCODINGS)}"
        )
    if width == 0 or height == 0:
        raise ImageDecodeError(f"empty image: width={width}, height={height}")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image {width}x{height} has {width * height} pixels, above max_pixels={max_pixels}"
        )
    bpp, channels, to_rgb = _COLOR_ENCODINGS[enc]
    row_bytes = width * bpp
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than width * bytes per pixel = {width} * {bpp} ({enc})"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ImageDecodeError(
            f"data length {data.size} != step * height = {step} * {height} (truncated or padded)"
        )
    rows = data.reshape(height, step)[:, :row_bytes]
    if enc == "mono16":
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        grey16 = np.ascontiguousarray(rows).view(dtype).astype(np.uint16)
        pixels = _mono16_to_8(grey16)
    else:
        pixels = rows.reshape(height, width, channels)
    if to_rgb is None:
        return pixels.copy()
    return cv2.cvtColor(np.ascontiguousarray(pixels), to_rgb)


def compressed_to_rgb(msg: CompressedImage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a jpeg or png ``sensor_msgs/CompressedImage`` to a new (H, W, 3) uint8 RGB array.

    ``format`` may be plain (``jpeg``) or image_transport's (``rgb8; jpeg compressed bgr8``);
    the codec is read from the data itself. Grey images come back with three equal channels.

    Raises:
        ImageDecodeError: compressedDepth payloads, empty or undecodable data, or a decoded
            image above ``max_pixels``.
    """
    if "compresseddepth" in msg.format.lower():
        raise ImageDecodeError(
            f"depth encoding sent as a camera image: CompressedImage format {msg.format!r}"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageDecodeError(f"empty CompressedImage data (format {msg.format!r})")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(
            f"cannot decode CompressedImage (format {msg.format!r}, {data.size} bytes): "
            "corrupt data or not jpeg/png"
        )
    height, width = bgr.shape[:2]
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image {width}x{height} has {width * height} pixels, above max_pixels={max_pixels}"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_image(msg: Image | CompressedImage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a raw or compressed camera message to (H, W, 3) RGB uint8 (the node's input)."""
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg, max_pixels)
    return image_to_rgb(msg, max_pixels)


def _to_image(pixels: np.ndarray, header: Header, encoding: str) -> Image:
    """Pack an (H, W) or (H, W, C) array, already in ``encoding``'s layout, into an Image."""
    msg = Image(header=header, encoding=encoding, height=pixels.shape[0], width=pixels.shape[1])
    msg.is_bigendian = _NATIVE_BIG_ENDIAN and pixels.dtype.itemsize > 1
    msg.step = pixels.shape[1] * (pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1))
    msg.data = _bytes_array(pixels)
    return msg


def _check_color(image: np.ndarray, name: str) -> np.ndarray:
    """Return ``image`` if it is (H, W, 3) uint8, else raise ValueError naming the problem."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return image


def rgb_to_image(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """Encode (H, W, 3) uint8 RGB as an Image in ``encoding`` ("rgb8" or "bgr8")."""
    rgb = _check_color(rgb, "rgb")
    if encoding == "rgb8":
        return _to_image(rgb, header, "rgb8")
    if encoding == "bgr8":
        return _to_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), header, "bgr8")
    raise ValueError(f"encoding must be one of ['bgr8', 'rgb8'], got {encoding!r}")


def bgr_to_image(bgr: np.ndarray, header: Header) -> Image:
    """Encode (H, W, 3) uint8 BGR (OpenCV drawings, overlays) as a bgr8 Image."""
    return _to_image(_check_color(bgr, "bgr"), header, "bgr8")


def depth_to_image(depth: np.ndarray, header: Header) -> Image:
    """Encode (H, W) float32 depth in metres as a 32FC1 Image (REP 118: NaN where invalid)."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    return _to_image(depth.astype(np.float32, copy=False), header, "32FC1")


def mask_to_image(mask: np.ndarray, header: Header) -> Image:
    """Encode an (H, W) bool mask as a mono8 Image with 0 outside and 255 inside."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    return _to_image(np.where(mask, np.uint8(255), np.uint8(0)), header, "mono8")


def rgb_to_compressed(
    rgb: np.ndarray, header: Header, fmt: str = "jpeg", jpeg_quality: int = 90
) -> CompressedImage:
    """Encode (H, W, 3) uint8 RGB as a jpeg or png CompressedImage.

    ``format`` follows image_transport (``rgb8; jpeg compressed bgr8``) so its compressed
    subscribers, rqt and rviz decode it.
    """
    rgb = _check_color(rgb, "rgb")
    params = {"jpeg": [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)], "png": []}
    if fmt not in params:
        raise ValueError(f"fmt must be one of ['jpeg', 'png'], got {fmt!r}")
    ok, encoded = cv2.imencode(f".{fmt}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params[fmt])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    msg = CompressedImage(header=header, format=f"rgb8; {fmt} compressed bgr8")
    msg.data = _bytes_array(encoded)
    return msg


def depth_to_pointcloud2(
    depth: np.ndarray,
    camera: np.ndarray,
    header: Header,
    step: int = 1,
    rgb: np.ndarray | None = None,
) -> PointCloud2:
    """Build an unorganised PointCloud2 of the valid depth pixels, optionally coloured.

    Args:
        depth: (H, W) float32, metres; NaN, inf and <= 0 are skipped (the cloud is dense).
        camera: (3, 3) camera matrix of the depth image, or its (H, W, 2) per-pixel rays
            (a distorted camera; :meth:`vpd_ros.engine.camera_model.CameraModel.rays`).
        header: stamp and optical frame of the depth image.
        step: keep every ``step``-th row and column.
        rgb: optional (H, W, 3) uint8 RGB; adds an ``rgb`` field packed as rviz expects
            (float32 whose bits are 0x00RRGGBB).

    Returns:
        PointCloud2 with height 1, float32 fields x, y, z (metres, optical frame) and rgb.
    """
    depth = np.asarray(depth, dtype=np.float32)
    xyz = backproject(depth, camera, step=step)
    names = ["x", "y", "z"]
    if rgb is not None:
        rgb = _check_color(rgb, "rgb")
        if rgb.shape[:2] != depth.shape:
            raise ValueError(f"rgb shape {rgb.shape[:2]} differs from depth shape {depth.shape}")
        names.append("rgb")
    cloud = np.empty(xyz.shape[0], dtype=[(n, np.float32) for n in names])
    cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is not None:
        colors = rgb[::step, ::step].astype(np.uint32)
        packed = (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]
        cloud["rgb"] = packed.ravel()[np.flatnonzero(sample_mask(depth, step=step))].view(
            np.float32
        )
    point_step = cloud.dtype.itemsize
    msg = PointCloud2(header=header, height=1, width=cloud.shape[0], is_dense=True)
    msg.fields = [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, n in enumerate(names)
    ]
    msg.is_bigendian = _NATIVE_BIG_ENDIAN
    msg.point_step = point_step
    msg.row_step = point_step * cloud.shape[0]
    msg.data = _bytes_array(cloud)
    return msg


def pointcloud2_to_array(msg: PointCloud2) -> np.ndarray:
    """Read a PointCloud2 into a 1-D structured array of height * width points (all fields).

    Field offsets, ``point_step``, row padding (``row_step``) and byte order are honoured.
    Fields with count > 1 become sub-array fields of that length. Without row padding the
    result is a view of ``msg.data`` (no copy); copy it before changing either.
    """
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _POINTFIELD_DTYPES:
            raise ValueError(
                f"PointField {f.name!r} has datatype {f.datatype}, "
                f"allowed {sorted(_POINTFIELD_DTYPES)}"
            )
        base = order + _POINTFIELD_DTYPES[f.datatype]
        names.append(f.name)
        formats.append(base if f.count == 1 else (base, (f.count,)))
        offsets.append(f.offset)
    dtype = np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step}
    )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    row_bytes = msg.width * msg.point_step
    if msg.row_step < row_bytes or data.size < msg.row_step * msg.height:
        raise ValueError(
            f"PointCloud2 data length {data.size} / row_step {msg.row_step} too small for "
            f"{msg.height} rows of {msg.width} points of {msg.point_step} bytes"
        )
    rows = data[: msg.row_step * msg.height].reshape(msg.height, msg.row_step)[:, :row_bytes]
    return np.ascontiguousarray(rows).view(dtype).reshape(-1)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Unpack a float32 ``rgb`` point field (bits 0x00RRGGBB) to (N, 3) uint8 RGB."""
    bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=-1).astype(
        np.uint8
    )


def camera_info_to_model(msg: CameraInfo, rectified: bool = False) -> CameraModel:
    """Return the camera model of a CameraInfo (K, D, P, ROI, binning).

    ``rectified`` says the image it describes was rectified (an ``image_rect*`` topic).

    Raises:
        ValueError: the calibration is unusable; the message says why.
    """
    roi = msg.roi
    return camera_model(msg.k, msg.d, msg.p, msg.distortion_model, (msg.width, msg.height),
                        (msg.binning_x, msg.binning_y),
                        (roi.x_offset, roi.y_offset, roi.width, roi.height), rectified)
