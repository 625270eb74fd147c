# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests for vpd_ros.ros.conversions: byte layouts, round trips and refusals.

Only message classes are used (no node, no DDS); the discovery range is still pinned to
localhost in case anything here ever starts a context.
"""

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import (
    CameraInfo,
    CompressedImage,
    Image,
    PointCloud2,
    PointField,
)
from std_msgs.msg import Header
from vpd_ros.engine.geometry import backproject
from vpd_ros.ros.conversions import (
    ImageDecodeError,
    bgr_to_image,
    camera_info_to_K,
    compressed_to_rgb,
    depth_to_image,
    depth_to_pointcloud2,
    image_to_rgb,
    mask_to_image,
    pointcloud2_to_array,
    rgb_to_compressed,
    rgb_to_image,
    unpack_rgb,
)

H, W = 48, 64
HEADER = Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_optical_frame")
K = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])


@pytest.fixture
def rgb() -> np.ndarray:
    """Return a random (H, W, 3) uint8 RGB image."""
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Image:
    """Build an Image by hand (independently of the encoders), with ``pad`` bytes per row."""
    dtype = pixels.dtype.newbyteorder(">" if big_endian else "<")
    rows = pixels.astype(dtype).reshape(pixels.shape[0], -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return Image(header=HEADER, height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                 is_bigendian=big_endian, step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_color_encodings_decode_to_rgb(rgb, encoding, pad):
    """Every colour layout, with or without row padding, decodes to the same RGB pixels."""
    channels = {"r": rgb[..., 0], "g": rgb[..., 1], "b": rgb[..., 2], "a": rgb[..., 0] ^ 0x5A}
    pixels = np.stack([channels[c] for c in encoding[:-1]], axis=-1)
    decoded = image_to_rgb(raw_image(pixels, encoding, pad))
    assert decoded.dtype == np.uint8 and decoded.shape == (H, W, 3)
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize("pad", [0, 3])
def test_mono8_decodes_to_grey_rgb(rgb, pad):
    """mono8 becomes three equal channels."""
    grey = rgb[..., 1]
    decoded = image_to_rgb(raw_image(grey, "mono8", pad))
    np.testing.assert_array_equal(decoded, np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("bits", [16, 12])
def test_mono16_scales_by_bit_depth_and_honours_byte_order(big_endian, pad, bits):
    """16-bit grey is shifted down from its bit depth (12-bit data fills 8 bits too)."""
    grey16 = np.random.default_rng(bits).integers(0, 2**bits, (H, W), dtype=np.uint16)
    grey16[0, 0] = 2**bits - 1
    decoded = image_to_rgb(raw_image(grey16, "mono16", pad, big_endian))
    expected = (grey16 >> (bits - 8)).astype(np.uint8)
    np.testing.assert_array_equal(decoded, np.repeat(expected[..., None], 3, axis=2))


def test_decoded_image_does_not_alias_the_message(rgb):
    """The decoded frame is a copy: reusing the message buffer cannot change it."""
    msg = rgb_to_image(rgb, HEADER)
    decoded = image_to_rgb(msg)
    msg.data[0] ^= 0xFF
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_rgb_encoders_round_trip(rgb, encoding):
    """rgb_to_image in either layout decodes to the input, with the header kept."""
    msg = rgb_to_image(rgb, HEADER, encoding)
    assert (msg.encoding, msg.step, msg.header) == (encoding, W * 3, HEADER)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_bgr_to_image_round_trip(rgb):
    """A BGR array published as bgr8 decodes to the RGB it depicts."""
    msg = bgr_to_image(np.ascontiguousarray(rgb[..., ::-1]), HEADER)
    assert msg.encoding == "bgr8"
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_depth_and_mask_encoders():
    """Depth is 32FC1 metres with NaN kept; masks are mono8 0/255."""
    depth = np.random.default_rng(1).uniform(0.2, 5.0, (H, W)).astype(np.float32)
    depth[3, 4] = np.nan
    msg = depth_to_image(depth, HEADER)
    assert (msg.encoding, msg.step, msg.height, msg.width) == ("32FC1", W * 4, H, W)
    decoded = np.frombuffer(msg.data, ">f4" if msg.is_bigendian else "<f4").reshape(H, W)
    np.testing.assert_array_equal(decoded, depth)
    with pytest.raises(ImageDecodeError, match="depth encoding sent as a camera image"):
        image_to_rgb(msg)

    mask = depth > 2.0
    mmsg = mask_to_image(mask, HEADER)
    assert (mmsg.encoding, mmsg.step, mmsg.header) == ("mono8", W, HEADER)
    values = np.frombuffer(mmsg.data, np.uint8).reshape(H, W)
    np.testing.assert_array_equal(values, np.where(mask, 255, 0))


def test_compressed_round_trips():
    """png is lossless; jpeg of a smooth image stays within a few grey levels."""
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    png = rgb_to_compressed(smooth, HEADER, "png")
    assert png.format == "rgb8; png compressed bgr8" and png.header == HEADER
    np.testing.assert_array_equal(compressed_to_rgb(png), smooth)
    jpeg = rgb_to_compressed(smooth, HEADER, "jpeg")
    assert "jpeg" in jpeg.format and len(jpeg.data) < smooth.nbytes
    diff = np.abs(compressed_to_rgb(jpeg).astype(int) - smooth)
    assert diff.mean() < 3.0
    plain = CompressedImage(format="png", data=cv2.imencode(".png", smooth[..., 1])[1].tobytes())
    np.testing.assert_array_equal(compressed_to_rgb(plain), np.repeat(smooth[..., 1:2], 3, 2))
    with pytest.raises(ValueError, match="fmt"):
        rgb_to_compressed(smooth, HEADER, "bmp")


def _fields(msg: Image, **changes) -> Image:
    """Return ``msg`` with some fields replaced."""
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"encoding": "16UC1"}, "depth encoding sent as a camera image"),
        ({"encoding": "32FC1"}, "depth encoding sent as a camera image"),
        ({"encoding": "yuv422"}, "unsupported image encoding 'yuv422'"),
        ({"encoding": "RGB8"}, "unsupported image encoding"),
        ({"width": 0}, "empty image"),
        ({"height": 0, "data": b""}, "empty image"),
        ({"step": W * 3 - 1}, "step 191 is smaller"),
        ({"data": bytes(H * W * 3 - 7)}, "data length 9209 != step \\* height"),
        ({"data": bytes(H * W * 3 + 1)}, "data length"),
    ],
)
def test_bad_images_are_refused_with_reason(rgb, change, reason):
    """Each malformed Image raises ImageDecodeError that names the problem."""
    with pytest.raises(ImageDecodeError, match=reason):
        image_to_rgb(_fields(rgb_to_image(rgb, HEADER), **change))


def test_max_pixels_cap(rgb):
    """Frames above the cap are refused before decoding; the error is still a ValueError."""
    msg = rgb_to_image(rgb, HEADER)
    with pytest.raises(ValueError, match="above max_pixels=100"):
        image_to_rgb(msg, max_pixels=100)
    with pytest.raises(ImageDecodeError, match="max_pixels"):
        compressed_to_rgb(rgb_to_compressed(rgb, HEADER, "png"), max_pixels=100)


@pytest.mark.parametrize(
    "msg, reason",
    [
        (CompressedImage(format="jpeg"), "empty CompressedImage"),
        (CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0 not really a jpeg"),
         "cannot decode"),
        (CompressedImage(format="16UC1; compressedDepth png", data=b"\x00" * 20),
         "depth encoding sent as a camera image"),
    ],
)
def test_bad_compressed_images_are_refused_with_reason(msg, reason):
    """Empty, corrupt and depth payloads raise ImageDecodeError with the reason."""
    with pytest.raises(ImageDecodeError, match=reason):
        compressed_to_rgb(msg)


def test_truncated_jpeg_is_refused_or_decodes_to_the_right_size(rgb):
    """A jpeg cut in half never yields a wrongly sized frame: error or full-size image."""
    data = rgb_to_compressed(rgb, HEADER, "jpeg").data.tobytes()
    msg = CompressedImage(format="jpeg", data=data[: len(data) // 8])
    try:
        assert compressed_to_rgb(msg).shape == (H, W, 3)
    except ImageDecodeError as err:
        assert "cannot decode" in str(err)


@pytest.mark.parametrize("step", [1, 3])
def test_pointcloud_reads_back_the_backprojected_points(rgb, step):
    """x, y, z equal backproject(); invalid depth is skipped; colours follow their pixels."""
    depth = np.random.default_rng(2).uniform(0.5, 3.0, (H, W)).astype(np.float32)
    depth[::7, ::5] = np.nan
    depth[1, 1] = 0.0
    msg = depth_to_pointcloud2(depth, K, HEADER, step=step, rgb=rgb)
    cloud = pointcloud2_to_array(msg)
    expected = backproject(depth, K, step=step)
    assert msg.header == HEADER and msg.is_dense and msg.height == 1
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"]
    assert msg.point_step == 16 and msg.row_step == 16 * expected.shape[0]
    np.testing.assert_array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], -1), expected)
    rows, cols = np.nonzero(np.isfinite(depth) & (depth > 0))
    sampled = (rows % step == 0) & (cols % step == 0)
    np.testing.assert_array_equal(unpack_rgb(cloud["rgb"]), rgb[rows[sampled], cols[sampled]])
    plain = pointcloud2_to_array(depth_to_pointcloud2(depth, K, HEADER, step=step))
    assert plain.dtype.names == ("x", "y", "z") and plain.shape == (expected.shape[0],)


def test_pointcloud_reader_handles_big_endian_offsets_and_row_padding():
    """A hand-built organised big-endian cloud with a gap and padded rows reads correctly."""
    values = np.arange(2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2)
    point = np.dtype({"names": ["a", "b"], "formats": [">f4", ">u2"], "offsets": [0, 6],
                      "itemsize": 10})
    rows = np.zeros((2, 3 * 10 + 4), np.uint8)
    for r in range(2):
        pts = np.zeros(3, point)
        pts["a"], pts["b"] = values[r, :, 0] / 2, values[r, :, 1]
        rows[r, :30] = pts.view(np.uint8)
    msg = PointCloud2(height=2, width=3, is_bigendian=True, point_step=10, row_step=34,
                      data=rows.tobytes())
    msg.fields = [PointField(name="a", offset=0, datatype=PointField.FLOAT32, count=1),
                  PointField(name="b", offset=6, datatype=PointField.UINT16, count=1)]
    cloud = pointcloud2_to_array(msg)
    np.testing.assert_array_equal(cloud["a"], values[..., 0].ravel() / 2)
    np.testing.assert_array_equal(cloud["b"], values[..., 1].ravel())
    msg.row_step = 20
    with pytest.raises(ValueError, match="row_step 20 too small"):
        pointcloud2_to_array(msg)


def test_camera_info_to_K():
    """CameraInfo's row-major k becomes the (3, 3) matrix."""
    info = CameraInfo(k=K.ravel().tolist())
    np.testing.assert_array_equal(camera_info_to_K(info), K)
