# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Procedural RGB-D scenes with instance masks and referring expressions, rendered by ray casting.

Why: the tiny model and the end-to-end tests need depth and referring-segmentation data with exact
ground truth that can be generated offline, in milliseconds, from a seed. Every scene is a closed
box room (floor, four walls, ceiling; the camera sees the floor and one to three walls) holding
3-6 spheres, boxes and upright cylinders in named colours and two size classes.

Conventions:
- World frame: z up, the floor is z = 0, the room spans [0, sx] x [0, sy] x [0, sz] metres.
- Camera frame: REP 103 optical frame (x right, y down, z forward). Pixel (u, v) = (column, row)
  has its centre at integer coordinates, so a pixel back-projects as
  ``depth[v, u] * K^-1 @ (u, v, 1)`` (metres).
- ``depth`` is z-depth along the optical axis (not the ray length), float32 metres, always in
  (0, 10) m because the room is at most 6.5 x 6.5 x 3.2 m.
- Seeds: training uses ``[TRAIN_SEEDS_START, TRAIN_SEEDS_STOP)``; held-out evaluation uses seeds
  ``>= HELDOUT_SEEDS_START``. The same seed always yields the same arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from vpd_ros.data.expressions import Referral, generate_expressions

TRAIN_SEEDS_START = 0
TRAIN_SEEDS_STOP = 100_000
HELDOUT_SEEDS_START = 1_000_000

#: Object shapes and their names in :class:`ObjectInfo`.
SHAPES = ('sphere', 'cube', 'cylinder')
#: Size classes; "large" objects are about twice the linear size of "small" ones.
SIZES = ('small', 'large')
#: Named object colours, linear RGB albedo in [0, 1].
PALETTE = {
    'red': (0.85, 0.08, 0.07),
    'green': (0.10, 0.62, 0.15),
    'blue': (0.08, 0.22, 0.85),
    'yellow': (0.95, 0.85, 0.10),
    'white': (0.95, 0.95, 0.93),
    'black': (0.07, 0.07, 0.08),
    'orange': (1.00, 0.48, 0.05),
    'purple': (0.50, 0.14, 0.70),
}
#: Values of :attr:`Scene.surface`.
SURFACE_FLOOR = 0
SURFACE_WALL = 1
SURFACE_CEILING = 2
SURFACE_OBJECT = 3
#: Objects with fewer visible pixels than this are not referred to by expressions.
MIN_VISIBLE_PIXELS = 60

# Muted room tones (so that the palette colours stay distinctive), RGB in [0, 1].
_ROOM_TONES = np.array([
    (0.72, 0.68, 0.60), (0.55, 0.55, 0.55), (0.62, 0.66, 0.70), (0.60, 0.64, 0.56),
    (0.56, 0.44, 0.32), (0.80, 0.78, 0.74), (0.42, 0.40, 0.38), (0.68, 0.58, 0.50),
])
# Half extents (m) per shape and size class: (low, high) for radius or half side; cylinders also
# get a half height range.
_SPHERE_R = {'small': (0.09, 0.13), 'large': (0.22, 0.30)}
_CUBE_H = {'small': (0.08, 0.12), 'large': (0.20, 0.27)}
_CYL_R = {'small': (0.06, 0.09), 'large': (0.15, 0.20)}
_CYL_HH = {'small': (0.10, 0.16), 'large': (0.28, 0.40)}
_AMBIENT = 0.35
_NOISE_STD = 0.025


@dataclass(frozen=True)
class ObjectInfo:
    """Ground truth for one object; geometry in the camera optical frame (metres).

    ``half_extents`` are (x, y, z) half sizes in the object's own frame (z up): (r, r, r) for a
    sphere, box half sides for a cube, (r, r, half height) for a cylinder. ``yaw`` (rad) is the
    rotation of a cube about the world vertical. ``centroid_px`` is the (u, v) mean of the
    object's visible pixels (NaN when none are visible); ``visible`` means at least
    ``MIN_VISIBLE_PIXELS`` pixels are.
    """

    id: int
    shape: str
    colour: str
    size: str
    centre: tuple[float, float, float]
    radius: float
    half_extents: tuple[float, float, float]
    yaw: float
    pixel_count: int
    centroid_px: tuple[float, float]
    visible: bool


@dataclass
class Scene:
    """One rendered scene.

    Arrays: ``rgb`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float32 z-depth in metres (optical
    frame); ``instances`` (H, W) int32, 0 = room, k = :attr:`ObjectInfo.id` k; ``surface``
    (H, W) uint8 ``SURFACE_*`` labels. ``K`` (3, 3) float64 intrinsics; ``T_world_cam`` (4, 4)
    float64 maps optical-frame points to the world frame (z up, floor z = 0); ``room_size``
    (sx, sy, sz) metres. ``expressions`` each name exactly one visible object.
    """

    seed: int
    rgb: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    surface: np.ndarray
    K: np.ndarray
    T_world_cam: np.ndarray
    room_size: tuple[float, float, float]
    objects: list[ObjectInfo]
    expressions: list[Referral] = field(default_factory=list)


@dataclass(frozen=True)
class _Obj:
    """World-frame object description used while rendering."""

    shape: str
    colour: str
    size: str
    centre: np.ndarray
    half: np.ndarray
    yaw: float

    @property
    def footprint(self) -> float:
        """Radius (m) of a vertical cylinder that encloses the object."""
        return float(np.hypot(self.half[0], self.half[1]))


def _hash2(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """Pseudo-random values in [0, 1) for integer lattice points (a sine hash)."""
    h = np.sin(i * 127.1 + j * 311.7 + salt * 74.7) * 43758.5453
    return h - np.floor(h)


def _value_noise(x: np.ndarray, y: np.ndarray, salt: float) -> np.ndarray:
    """Smooth value noise in [0, 1) at coordinates (x, y), lattice spacing 1."""
    xi, yi = np.floor(x), np.floor(y)
    fx, fy = x - xi, y - yi
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    a, b = _hash2(xi, yi, salt), _hash2(xi + 1, yi, salt)
    c, d = _hash2(xi, yi + 1, salt), _hash2(xi + 1, yi + 1, salt)
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


def _texture(kind: int, s: np.ndarray, t: np.ndarray, scale: float, salt: float) -> np.ndarray:
    """Brightness factor around 1 for surface coordinates (s, t) in metres.

    kind 0 = checker, 1 = stripes along s, 2 = value noise, 3 = planks (stripes with a random
    tone per plank).
    """
    if kind == 0:
        return np.where((np.floor(s / scale) + np.floor(t / scale)) % 2 == 0, 1.12, 0.82)
    if kind == 1:
        return np.where(np.floor(s / scale) % 2 == 0, 1.1, 0.86)
    if kind == 2:
        return 0.75 + 0.5 * _value_noise(s / scale, t / scale, salt)
    plank = np.floor(s / scale)
    return 0.8 + 0.35 * _hash2(plank, np.floor(t / (4 * scale) + 0.5 * plank), salt)


def _camera_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Return R (3, 3) mapping optical-frame directions to world (z up) for a level camera.

    yaw: heading of the optical axis, radians from world +y towards +x; pitch: downward tilt.
    """
    forward = np.array([np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.cos(yaw), -np.sin(yaw), 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def _sample_object(rng: np.random.Generator) -> tuple[str, str, str, np.ndarray, float]:
    """Draw shape, colour, size class, half extents and yaw for one object."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(PALETTE)[rng.integers(len(PALETTE))]
    size = SIZES[rng.integers(len(SIZES))]
    yaw = 0.0
    if shape == 'sphere':
        r = rng.uniform(*_SPHERE_R[size])
        half = np.array([r, r, r])
    elif shape == 'cube':
        half = rng.uniform(*_CUBE_H[size], size=3)
        yaw = float(rng.uniform(0.0, np.pi / 2))
    else:
        r = rng.uniform(*_CYL_R[size])
        half = np.array([r, r, rng.uniform(*_CYL_HH[size])])
    return shape, colour, size, half, yaw


def _place_objects(rng: np.random.Generator, count: int, cam: np.ndarray, rot: np.ndarray,
                   room: np.ndarray, K: np.ndarray, width: int, height: int) -> list[_Obj]:
    """Place objects on the floor, in view, apart, and with little mutual occlusion.

    Each object's centre must project inside the central part of the image; footprints may not
    overlap; and the azimuths of two objects seen from the camera must differ by at least half
    the sum of their angular half widths, so that no object hides most of another.
    """
    yaw_cam = np.arctan2(rot[0, 2], rot[1, 2])
    half_fov = np.arctan2(width / 2, K[0, 0])
    placed: list[tuple[_Obj, float, float]] = []
    attempts = 0
    while len(placed) < count and attempts < 300:
        attempts += 1
        shape, colour, size, half, yaw = _sample_object(rng)
        azimuth = rng.uniform(-0.85, 0.85) * half_fov
        dist = rng.uniform(1.3, 5.0)
        heading = yaw_cam + azimuth
        centre = np.array([cam[0] + dist * np.sin(heading), cam[1] + dist * np.cos(heading),
                           half[2]])
        obj = _Obj(shape, colour, size, centre, half, yaw)
        margin = obj.footprint + 0.05
        if np.any(centre[:2] < margin) or np.any(centre[:2] > room[:2] - margin):
            continue
        p_cam = rot.T @ (centre - cam)
        u = K[0, 0] * p_cam[0] / p_cam[2] + K[0, 2]
        v = K[1, 1] * p_cam[1] / p_cam[2] + K[1, 2]
        if not (0.1 * width < u < 0.9 * width and 0.15 * height < v < 0.95 * height):
            continue
        ang = np.arctan2(obj.footprint, dist)
        if any(np.linalg.norm(centre[:2] - o.centre[:2]) < margin + o.footprint
               or abs(azimuth - a) < 0.5 * (ang + w) for o, a, w in placed):
            continue
        placed.append((obj, azimuth, ang))
    return [o for o, _, _ in placed]


def _room_hit(o: np.ndarray, d: np.ndarray, room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersect rays from inside the room with its walls.

    Returns t (H, W), the ray parameter of the exit point, and the face index (H, W) in 0..5:
    2 * axis + (1 if leaving through the upper plane of that axis else 0).
    """
    with np.errstate(divide='ignore'):
        bound = np.where(d > 0, room, 0.0)
        t_axes = (bound - o) / d
    t_axes = np.where(d == 0, np.inf, t_axes)
    axis = np.argmin(t_axes, axis=-1)
    t = np.take_along_axis(t_axes, axis[..., None], axis=-1)[..., 0]
    upper = np.take_along_axis(d, axis[..., None], axis=-1)[..., 0] > 0
    return t, 2 * axis + upper


def _object_hit(obj: _Obj, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Return the ray parameter t of the first hit of rays (o + t d) with obj, inf on a miss."""
    c, s = np.cos(obj.yaw), np.sin(obj.yaw)
    rz = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> object frame
    ol = rz @ (o - obj.centre)
    dl = d @ rz.T
    dx, dy, dz = dl[..., 0], dl[..., 1], dl[..., 2]
    hx, _, hz = obj.half
    inf = np.inf
    with np.errstate(divide='ignore', invalid='ignore'):
        if obj.shape == 'sphere':
            a = dx * dx + dy * dy + dz * dz
            b = dx * ol[0] + dy * ol[1] + dz * ol[2]
            disc = b * b - a * (ol @ ol - hx * hx)
            t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            return np.where((disc >= 0) & (t > 0), t, inf)
        if obj.shape == 'cube':
            t1 = (-obj.half - ol) / dl
            t2 = (obj.half - ol) / dl
            t_near = np.max(np.minimum(t1, t2), axis=-1)
            t_far = np.min(np.maximum(t1, t2), axis=-1)
            return np.where((t_near <= t_far) & (t_near > 0), t_near, inf)
        a = dx * dx + dy * dy
        b = dx * ol[0] + dy * ol[1]
        disc = b * b - a * (ol[0] ** 2 + ol[1] ** 2 - hx * hx)
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        z_side = ol[2] + t_side * dz
        t_side = np.where((disc >= 0) & (t_side > 0) & (np.abs(z_side) <= hz), t_side, inf)
        t_cap = np.where(dz < 0, (hz - ol[2]) / dz, (-hz - ol[2]) / dz)
        x_cap, y_cap = ol[0] + t_cap * dx, ol[1] + t_cap * dy
        t_cap = np.where((t_cap > 0) & (x_cap * x_cap + y_cap * y_cap <= hx * hx), t_cap, inf)
        return np.minimum(t_side, t_cap)


def _object_normal(obj: _Obj, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return world normals (N, 3) and object-frame positions (N, 3) for hit points p (N, 3)."""
    c, s = np.cos(obj.yaw), np.sin(obj.yaw)
    rz = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    pl = (p - obj.centre) @ rz.T
    if obj.shape == 'sphere':
        nl = pl / obj.half[0]
    elif obj.shape == 'cube':
        face = np.argmax(np.abs(pl) / obj.half, axis=-1)
        nl = np.zeros_like(pl)
        nl[np.arange(len(pl)), face] = np.sign(pl[np.arange(len(pl)), face])
    else:
        on_cap = np.abs(pl[:, 2]) >= obj.half[2] - 1e-6
        nl = np.where(on_cap[:, None], np.stack([0 * pl[:, 0], 0 * pl[:, 1], np.sign(pl[:, 2])],
                                                axis=-1),
                      np.stack([pl[:, 0], pl[:, 1], 0 * pl[:, 2]], axis=-1) / obj.half[0])
    return nl @ rz, pl


def _bbox(obj: _Obj, cam: np.ndarray, rot: np.ndarray, K: np.ndarray, width: int,
          height: int) -> tuple[slice, slice]:
    """Pixel rows/cols that can see obj: the projection of its enclosing box, 2 px padding."""
    r = obj.footprint
    corners = obj.centre + np.array([[sx * r, sy * r, sz * obj.half[2]] for sx in (-1, 1)
                                     for sy in (-1, 1) for sz in (-1, 1)])
    pc = (corners - cam) @ rot
    uv = (pc @ K.T)[:, :2] / pc[:, 2:3]
    u0, v0 = np.floor(uv.min(axis=0)).astype(int) - 2
    u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + 3
    return slice(max(v0, 0), min(v1, height)), slice(max(u0, 0), min(u1, width))


def render_scene(seed: int, width: int = 320, height: int = 240, fx: float | None = None,
                 fy: float | None = None, cx: float | None = None,
                 cy: float | None = None, max_expressions: int = 8) -> Scene:
    """Render the scene for ``seed`` (deterministic) with a pinhole camera.

    Args:
        seed: non-negative integer; see the module docstring for the train/held-out split.
        width, height: image size in pixels (>= 16).
        fx, fy: focal lengths in pixels; default 0.8 * width (about 64 degrees horizontal FOV).
        cx, cy: principal point; default the image centre ((width - 1) / 2, (height - 1) / 2).
        max_expressions: how many referring expressions to keep (>= 0).

    Returns:
        The :class:`Scene` with RGB, z-depth (metres), instance ids and ground truth.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    if width < 16 or height < 16:
        raise ValueError(f'width and height must be >= 16, got {width}x{height}')
    if max_expressions < 0:
        raise ValueError(f'max_expressions must be >= 0, got {max_expressions}')
    fx = 0.8 * width if fx is None else float(fx)
    fy = fx if fy is None else float(fy)
    cx = (width - 1) / 2 if cx is None else float(cx)
    cy = (height - 1) / 2 if cy is None else float(cy)
    if fx <= 0 or fy <= 0:
        raise ValueError(f'focal lengths must be > 0, got fx={fx}, fy={fy}')
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    rng = np.random.default_rng(seed)

    room = np.array([rng.uniform(4.5, 6.5), rng.uniform(4.5, 6.5), rng.uniform(2.6, 3.2)])
    cam = np.array([rng.uniform(1.2, room[0] - 1.2), rng.uniform(0.3, 0.9),
                    rng.uniform(1.0, 1.6)])
    rot = _camera_rotation(rng.uniform(-0.5, 0.5), rng.uniform(np.radians(6), np.radians(20)))
    objs = _place_objects(rng, int(rng.integers(3, 7)), cam, rot, room, K, width, height)
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.2)
    light = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                      np.sin(elevation)])
    floor_tex, floor_scale = int(rng.choice([0, 3])), rng.uniform(0.3, 0.6)
    wall_tex = rng.integers(0, 3, size=4)
    wall_scale = rng.uniform(0.15, 0.5, size=4)
    tones = _ROOM_TONES[rng.choice(len(_ROOM_TONES), size=6, replace=False)]
    salt = rng.uniform(0, 100)

    # Rays: d has optical-frame z = 1, so the ray parameter t is the z-depth.
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    d = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1) @ rot.T
    t, face = _room_hit(cam, d, room)
    inst = np.zeros((height, width), np.int32)
    for k, obj in enumerate(objs, start=1):
        rows, cols = _bbox(obj, cam, rot, K, width, height)
        t_obj = _object_hit(obj, cam, d[rows, cols])
        nearer = t_obj < t[rows, cols]
        t[rows, cols] = np.where(nearer, t_obj, t[rows, cols])
        inst[rows, cols] = np.where(nearer, k, inst[rows, cols])

    p = cam + t[..., None] * d
    albedo = np.empty((height, width, 3))
    normal = np.zeros((height, width, 3))
    surface = np.full((height, width), SURFACE_WALL, np.uint8)
    room_px = inst == 0
    axis, upper = face // 2, face % 2 == 1
    normal[room_px, axis[room_px]] = np.where(upper[room_px], -1.0, 1.0)
    floor = room_px & (face == 4)
    ceiling = room_px & (face == 5)
    surface[floor], surface[ceiling] = SURFACE_FLOOR, SURFACE_CEILING
    albedo[floor] = tones[0] * _texture(floor_tex, p[floor, 0], p[floor, 1], floor_scale,
                                        salt)[:, None]
    albedo[ceiling] = tones[1]
    for w in range(4):
        m = room_px & (face == w)
        along = p[m, 1] if w < 2 else p[m, 0]
        albedo[m] = tones[2 + w] * _texture(int(wall_tex[w]), along, p[m, 2], wall_scale[w],
                                            salt + w)[:, None]
    surface[~room_px] = SURFACE_OBJECT
    for k, obj in enumerate(objs, start=1):
        m = inst == k
        n, pl = _object_normal(obj, p[m])
        normal[m] = n
        grain = 0.92 + 0.16 * _value_noise(8 * (pl[:, 0] + pl[:, 2]), 8 * pl[:, 1], salt + k)
        albedo[m] = np.asarray(PALETTE[obj.colour]) * grain[:, None]

    shade = _AMBIENT + (1 - _AMBIENT) * np.maximum(normal @ light, 0.0)
    noise = 1.0 + _NOISE_STD * rng.standard_normal((height, width))
    rgb = np.clip(albedo * (shade * noise)[..., None], 0.0, 1.0) ** (1 / 2.2)
    rgb8 = (rgb * 255 + 0.5).astype(np.uint8)

    counts = np.bincount(inst.ravel(), minlength=len(objs) + 1)
    sum_u = np.bincount(inst.ravel(), weights=u.ravel(), minlength=len(objs) + 1)
    sum_v = np.bincount(inst.ravel(), weights=v.ravel(), minlength=len(objs) + 1)
    objects = []
    for k, obj in enumerate(objs, start=1):
        centre = rot.T @ (obj.centre - cam)
        n_px = int(counts[k])
        centroid = (sum_u[k] / n_px, sum_v[k] / n_px) if n_px else (np.nan, np.nan)
        objects.append(ObjectInfo(
            id=k, shape=obj.shape, colour=obj.colour, size=obj.size,
            centre=tuple(float(x) for x in centre), radius=float(obj.half[0]),
            half_extents=tuple(float(x) for x in obj.half), yaw=obj.yaw, pixel_count=n_px,
            centroid_px=(float(centroid[0]), float(centroid[1])),
            visible=n_px >= MIN_VISIBLE_PIXELS))
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rot, cam
    expressions = generate_expressions(objects, np.random.default_rng([seed, 1]),
                                       max_expressions, MIN_VISIBLE_PIXELS)
    return Scene(seed=int(seed), rgb=rgb8, depth=t.astype(np.float32), instances=inst,
                 surface=surface, K=K, T_world_cam=T,
                 room_size=(float(room[0]), float(room[1]), float(room[2])), objects=objects,
                 expressions=expressions)


def iter_scenes(seeds: Iterable[int], **kwargs) -> Iterator[Scene]:
    """Yield ``render_scene(seed, **kwargs)`` for each seed, lazily."""
    for seed in seeds:
        yield render_scene(int(seed), **kwargs)


class SceneDataset:
    """Map-style dataset over a seed range (works as a ``torch.utils.data.Dataset``).

    ``SceneDataset(TRAIN_SEEDS_START, TRAIN_SEEDS_STOP)[i]`` renders seed ``start + i``.
    """

    def __init__(self, start: int, stop: int, **render_kwargs) -> None:
        if not 0 <= start < stop:
            raise ValueError(f'need 0 <= start < stop, got start={start}, stop={stop}')
        self.start, self.stop, self.render_kwargs = start, stop, render_kwargs

    def __len__(self) -> int:
        """Return the number of seeds."""
        return self.stop - self.start

    def __getitem__(self, index: int) -> Scene:
        """Render the scene for seed ``start + index``."""
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range [0, {len(self)})')
        return render_scene(self.start + index, **self.render_kwargs)
