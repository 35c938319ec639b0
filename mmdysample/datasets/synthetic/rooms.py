# Copyright (c) mmdysample contributors. All rights reserved.
"""Indoor rooms with metric depth: the scenes of the depth data.

A room is an axis-aligned box (floor, four walls, ceiling) holding a few
axis-aligned boxes (furniture on the floor, a flat cabinet or picture on a
wall), seen from inside by a pinhole camera with NYU Depth V2's intrinsics
scaled to the image size. One ray per pixel is cast through the room, all
pixels at once (numpy, no per-pixel Python loop): the nearest surface gives
the z-depth (the distance along the optical axis, NYU's convention) and the
colour.

The image carries the cues a monocular depth model learns from: textures
fixed in the world (checkered floors and ceilings, striped walls and
furniture), so their period on the image shrinks with distance; Lambertian
shading from a ceiling lamp and a stronger light at the camera (as a
flash: surfaces darken with distance and set the walls, floor and box
faces apart by orientation); a fade to a dark haze with distance;
occlusion edges where the furniture stands in front of the walls.
Textures lose contrast where their period falls below a pixel instead of
aliasing.

World axes: ``x`` across the room, ``y`` up, ``z`` into the room; the room
spans ``[0, width] x [0, height] x [0, length]`` metres.
"""
from typing import List, NamedTuple, Tuple

import numpy as np

__all__ = [
    'DepthScene', 'RoomType', 'ROOM_TYPES', 'MAX_DEPTH', 'ROOMS_VERSION',
    'ROOMS_DESCRIPTION', 'nyu_intrinsics', 'render_room'
]

#: Bumped whenever the rendered rooms change, so that an existing depth
#: output is regenerated (the segmentation scenes keep their own
#: ``GENERATOR_VERSION``).
ROOMS_VERSION = 1
#: One line for ``--help``.
ROOMS_DESCRIPTION = ('indoor box rooms with furniture and metric depth '
                     '(NYU Depth V2 layout)')
#: Depths beyond this (metres) are written as this, NYU Depth V2's range.
MAX_DEPTH = 10.0

# NYU Depth V2's colour camera at 640 x 480 (fx, fy, cx, cy).
_NYU_SIZE = (480, 640)
_NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)

# The light at the camera dominates, as a flash does: the brightness of a
# surface falls with its distance, a cue the lamp and the albedos vary.
_AMBIENT = 0.18
_LAMP = 0.9  # ceiling lamp
_LAMP_FALLOFF = 1.5  # metres where the lamp's light falls to a half
_FLASH = 2.2  # light at the camera
_FLASH_FALLOFF = 2.5  # metres where the flash's light falls to a half
_HAZE_LENGTH = 7.0  # metres for the colour to fade to exp(-1)
_HAZE = np.array([0.10, 0.10, 0.13])
_EXPOSURE = 1.5
_NOISE = 1.5  # sensor noise, in 8-bit levels


class RoomType(NamedTuple):
    """A kind of room: its name and the ranges its layout is drawn from.

    Attributes:
        name (str): A class of mmseg's ``NYUDataset`` (``'bedroom'``, ...),
            the word its image files start with.
        width (tuple[float, float]): Room width (``x``) in metres.
        length (tuple[float, float]): Room length (``z``) in metres.
        height (tuple[float, float]): Ceiling height in metres.
        furniture (tuple[int, int]): Number of boxes on the floor, both
            ends included.
    """
    name: str
    width: Tuple[float, float]
    length: Tuple[float, float]
    height: Tuple[float, float]
    furniture: Tuple[int, int]


#: The rooms drawn from, uniformly. The largest reach 10 m and beyond, so
#: a few far walls lie at the clip depth.
ROOM_TYPES: Tuple[RoomType, ...] = (
    RoomType('bathroom', (2.0, 3.2), (2.5, 4.0), (2.4, 2.7), (2, 3)),
    RoomType('bedroom', (3.0, 4.5), (3.5, 5.5), (2.4, 2.8), (3, 5)),
    RoomType('kitchen', (2.5, 4.0), (3.5, 6.0), (2.4, 2.8), (3, 5)),
    RoomType('study', (2.5, 4.0), (3.0, 5.0), (2.4, 2.8), (2, 4)),
    RoomType('office', (3.5, 5.5), (4.5, 8.0), (2.6, 3.0), (3, 6)),
    RoomType('living_room', (4.0, 6.0), (5.0, 8.5), (2.5, 3.0), (3, 6)),
    RoomType('dining_room', (3.5, 5.0), (4.0, 7.0), (2.5, 3.0), (3, 5)),
    RoomType('classroom', (5.5, 8.0), (8.0, 11.5), (2.8, 3.4), (4, 7)),
)


class DepthScene(NamedTuple):
    """One rendered room.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        depth (np.ndarray): ``(H, W)`` float32 z-depth in metres, in
            ``(0, MAX_DEPTH]``.
        category (str): The room's :attr:`RoomType.name`.
    """
    image: np.ndarray
    depth: np.ndarray
    category: str


def nyu_intrinsics(height: int, width: int) -> Tuple[float, ...]:
    """NYU Depth V2's pinhole intrinsics scaled to an image size.

    Args:
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        tuple[float, float, float, float]: ``(fx, fy, cx, cy)`` in pixels.

    Example:
        >>> [round(v, 1) for v in nyu_intrinsics(240, 320)]
        [259.4, 259.7, 162.8, 126.9]
    """
    sy, sx = height / _NYU_SIZE[0], width / _NYU_SIZE[1]
    fx, fy, cx, cy = _NYU_INTRINSICS
    return fx * sx, fy * sy, cx * sx, cy * sy


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: roll about z, then pitch, then yaw."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


class _Surface(NamedTuple):
    """How one surface looks: two albedos mixed by a pattern."""
    colour_a: np.ndarray
    colour_b: np.ndarray
    checker: bool  # checker when True, else stripes along the first axis
    period: float  # metres


def _surface(rng: np.random.Generator, light: Tuple[float, float],
             period: Tuple[float, float], contrast: Tuple[float, float],
             checker_share: float) -> _Surface:
    """Draw a look: a colour, a darker one, the pattern and its period,
    each from its range."""
    colour = rng.uniform(*light, size=3)
    darker = colour * (1 - rng.uniform(*contrast))
    return _Surface(colour, darker, bool(rng.random() < checker_share),
                    float(rng.uniform(*period)))


def _room_surfaces(rng: np.random.Generator) -> List[_Surface]:
    """Floor, ceiling, then the walls at x = 0, x = width, z = 0, z =
    length."""
    floor = _surface(rng, (0.25, 0.75), (0.25, 0.6), (0.3, 0.6), 0.6)
    ceiling = _surface(rng, (0.75, 0.95), (0.5, 0.7), (0.1, 0.25), 1.0)
    wall = _surface(rng, (0.45, 0.95), (0.12, 0.5), (0.15, 0.4), 0.3)
    walls = [wall] * 4
    accent = int(rng.integers(0, 4))  # one wall painted differently
    walls[accent] = _surface(rng, (0.3, 0.9), (0.15, 0.6), (0.2, 0.5), 0.5)
    return [floor, ceiling] + walls


def _place_boxes(rng: np.random.Generator, size: np.ndarray,
                 camera: np.ndarray,
                 count: int) -> Tuple[np.ndarray, List[_Surface]]:
    """Furniture on the floor (at least 0.6 m from the camera) and one flat
    box on a wall; returns ``(N, 2, 3)`` corners and their looks."""
    width, height, length = size
    boxes, looks = [], []
    for _ in range(count * 4):  # a few tries per box
        if len(boxes) == count:
            break
        extent = rng.uniform((0.4, 0.4, 0.4), (1.6, 2.0, 1.2))
        extent = np.minimum(extent, (width * 0.6, height - 0.3, length * 0.4))
        lo = np.array([
            rng.uniform(0, width - extent[0]), 0.0,
            rng.uniform(0, length - extent[2])
        ])
        hi = lo + extent
        gap = np.maximum(np.maximum(lo - camera, camera - hi), 0)
        if np.hypot(gap[0], gap[2]) < 0.6 and camera[1] < hi[1] + 0.6:
            continue
        boxes.append((lo, hi))
        looks.append(
            _surface(rng, (0.15, 0.9), (0.08, 0.3), (0.3, 0.7), 0.5))
    # a cabinet or a picture on one of the side walls or the far wall
    wall = int(rng.integers(0, 3))
    extent = rng.uniform((0.5, 0.4, 0.04), (1.5, 1.0, 0.4))
    bottom = rng.uniform(0.9, max(height - extent[1] - 0.2, 0.95))
    if wall == 2:  # the far wall, z = length
        x = rng.uniform(0, width - extent[0])
        lo = np.array([x, bottom, length - extent[2]])
        hi = np.array([x + extent[0], bottom + extent[1], length])
    else:  # a side wall: the extents swap, its depth runs along x
        z = rng.uniform(length * 0.3, length - extent[0])
        x = 0.0 if wall == 0 else width - extent[2]
        lo = np.array([x, bottom, z])
        hi = np.array([x + extent[2], bottom + extent[1], z + extent[0]])
    boxes.append((lo, hi))
    looks.append(_surface(rng, (0.1, 0.9), (0.05, 0.2), (0.3, 0.8), 0.5))
    return np.array(boxes, dtype=np.float64).reshape(-1, 2, 3), looks


def _cast(origin: np.ndarray, rays: np.ndarray, size: np.ndarray,
          boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of every ray: ``(t, surface index, normal axis)``.

    ``rays`` are ``(3, P)`` (one row per axis, so that the reductions over
    the axes are elementwise operations on rows) with a unit component
    along the optical axis, so ``t`` is the z-depth. Surfaces: 0 floor,
    1 ceiling, 2-5 walls, then the boxes.
    """
    origin = origin[:, None]
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / rays
        # From inside the room every ray leaves through one plane per axis.
        bound = np.where(rays > 0, size[:, None], 0.0)
        t_axes = np.where(rays == 0, np.inf, (bound - origin) * inv)
        axis = np.argmin(t_axes, axis=0)
        t = np.take_along_axis(t_axes, axis[None], 0)[0]
        positive = np.take_along_axis(rays, axis[None], 0)[0] > 0
        # x -> walls 2 / 3, y -> floor 0 / ceiling 1, z -> walls 4 / 5
        surface = np.choose(axis, [2, 0, 4]) + positive
        for index, (lo, hi) in enumerate(boxes):
            t_lo = (lo[:, None] - origin) * inv
            t_hi = (hi[:, None] - origin) * inv
            t_min = np.minimum(t_lo, t_hi)
            near = t_min.max(axis=0)
            far = np.maximum(t_lo, t_hi).min(axis=0)
            hit = (near <= far) & (near > 0) & (near < t)
            t[hit] = near[hit]
            surface[hit] = 6 + index
            axis[hit] = t_min[:, hit].argmax(axis=0)
    return t, surface, axis


def _albedo(points: np.ndarray, t: np.ndarray, surface: np.ndarray,
            axis: np.ndarray, cosine: np.ndarray, looks: List[_Surface],
            focal: float) -> np.ndarray:
    """The textured albedo at every hit, ``(3, P)`` in ``[0, 1]``."""
    # Texture coordinates: the two world axes in the surface's plane, the
    # horizontal one first (stripes run vertically on walls).
    first = np.choose(axis, [points[2], points[0], points[0]])
    second = np.choose(axis, [points[1], points[2], points[1]])
    period = np.array([s.period for s in looks])[surface]
    checker = np.array([s.checker for s in looks])[surface]
    wave = np.sin(np.pi * first / period)
    wave = np.where(checker, wave * np.sin(np.pi * second / period), wave)
    # The size of a pixel on the surface: a pattern finer than that is
    # averaged (a smooth, low-contrast wave) instead of aliased.
    footprint = t / focal / np.maximum(cosine, 0.2)
    mix = 0.5 + 0.5 * np.tanh(wave * period / (2.0 * footprint))
    colour_a = np.array([s.colour_a for s in looks]).T[:, surface]
    colour_b = np.array([s.colour_b for s in looks]).T[:, surface]
    return colour_a + (colour_b - colour_a) * mix


def render_room(rng: np.random.Generator, height: int,
                width: int) -> DepthScene:
    """Render one room: an RGB image and its z-depth in metres.

    Args:
        rng (np.random.Generator): Source of randomness; the scene is a
            pure function of its state.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        DepthScene: The ``(H, W, 3)`` uint8 image, the ``(H, W)`` float32
        depth (clipped to :data:`MAX_DEPTH`) and the room's category.

    Example:
        >>> scene = render_room(np.random.default_rng(0), 48, 64)
        >>> scene.image.shape, scene.image.dtype.name, scene.depth.shape
        ((48, 64, 3), 'uint8', (48, 64))
        >>> bool(0.3 < scene.depth.min() < scene.depth.max() <= MAX_DEPTH)
        True
    """
    room = ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
    size = np.array([
        rng.uniform(*room.width),
        rng.uniform(*room.height),
        rng.uniform(*room.length)
    ])
    camera = np.array([
        size[0] * rng.uniform(0.25, 0.75),
        min(rng.uniform(1.1, 1.7), size[1] - 0.4),
        rng.uniform(0.3, max(0.2 * size[2], 0.4))
    ])
    rotation = _rotation(
        np.radians(rng.uniform(-30, 30)), np.radians(rng.uniform(-20, 2)),
        np.radians(rng.uniform(-3, 3)))
    looks = _room_surfaces(rng)
    boxes, box_looks = _place_boxes(
        rng, size, camera, int(rng.integers(room.furniture[0],
                                            room.furniture[1] + 1)))
    looks += box_looks
    lamp = np.array([
        size[0] * rng.uniform(0.3, 0.7), size[1] - 0.15,
        size[2] * rng.uniform(0.25, 0.6)
    ])

    fx, fy, cx, cy = nyu_intrinsics(height, width)
    v, u = np.mgrid[0:height, 0:width].reshape(2, -1) + 0.5
    rays = rotation @ np.stack([(u - cx) / fx, -(v - cy) / fy,
                                np.ones_like(u)])
    t, surface, axis = _cast(camera, rays, size, boxes)

    points = camera[:, None] + rays * t
    length = np.sqrt((rays**2).sum(0))
    step = np.take_along_axis(rays, axis[None], 0)[0]
    normal = np.zeros_like(rays)
    normal[axis, np.arange(axis.size)] = -np.sign(step)
    cosine = np.abs(step) / length  # between the ray and the normal
    albedo = _albedo(points, t, surface, axis, cosine, looks,
                     float(np.sqrt(fx * fy)))

    to_lamp = lamp[:, None] - points
    lamp_dist = np.sqrt((to_lamp**2).sum(0))
    lambert = np.clip((normal * to_lamp).sum(0) / lamp_dist, 0, None)
    distance = t * length
    shade = (_AMBIENT +
             _LAMP * lambert / (1 + (lamp_dist / _LAMP_FALLOFF)**2) +
             _FLASH * cosine / (1 + (distance / _FLASH_FALLOFF)**2))
    fade = np.exp(-distance / _HAZE_LENGTH)
    # a film-like response: bright near surfaces keep their texture
    lit = 1 - np.exp(-_EXPOSURE * albedo * shade)
    colour = lit * fade + _HAZE[:, None] * (1 - fade)
    colour = colour.T * 255 + rng.normal(0, _NOISE, (t.size, 3))
    image = np.clip(np.round(colour), 0, 255).astype(np.uint8)
    depth = np.minimum(t, MAX_DEPTH).astype(np.float32)
    return DepthScene(
        image.reshape(height, width, 3), depth.reshape(height, width),
        room.name)
