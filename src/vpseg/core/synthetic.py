"""The synthetic toy world: seeded RGB videos with exact panoptic ground truth.

A street-like scene seen by a slowly panning camera: textured stuff regions (sky, buildings, walls,
vegetation, road, sidewalk, terrain, poles) that are learnable from colour and texture, and thing
objects (people, cars, buses, dogs) with class-specific shapes and textures that move with their
own velocities, occlude each other by depth, walk out of the frame and come back, vanish behind
foreground occluders (poles, hedges) and reappear with the same track id. A void border (ignore
label) frames every image; some videos hold a far-away crowd (thing pixels with instance 0).

Everything is deterministic in ``(seed, video index)``. World classes are mapped to a data set's
label space by category name (``world_classes``), so a synthetic KITTI-STEP set uses Cityscapes
ids with only people and cars tracked, a synthetic VIPSeg set uses VIPSeg ids, and so on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vpseg.core.labels import LabelSpace
from vpseg.core.panoptic import PANOPTIC_DTYPE
from vpseg.core.video import LazyFrames, Video

__all__ = ["SynthConfig", "WorldClasses", "world_classes", "generate", "generate_video",
           "stream_video"]

#: World kind -> candidate category names, first match in the label space wins.
_STUFF_NAMES: dict[str, tuple[str, ...]] = {
    "sky": ("sky",),
    "building": ("building", "house", "other_construction"),
    "wall": ("wall",),
    "vegetation": ("vegetation", "tree", "other_plant"),
    "road": ("road", "floor", "ground"),
    "sidewalk": ("sidewalk", "path", "crosswalk", "ground"),
    "terrain": ("terrain", "grass", "ground"),
    "pole": ("pole", "pillar"),
}
_THING_NAMES: dict[str, tuple[str, ...]] = {
    "person": ("person", "pedestrian"),
    "car": ("car",),
    "bus": ("bus",),
    "dog": ("dog",),
}
_FALLBACK_STUFF = ("background", "others", "other")


@dataclass(frozen=True)
class SynthConfig:
    """Size and difficulty of the synthetic videos.

    ``objects`` is the number of thing tracks per video; ``difficulty`` in [0, 1] scales object
    speed, image noise, the number of foreground occluders and the chance of a crowd region.
    The default is a fair test: >= 8 classes (where the label space has them), about 7 thing
    instances per frame, occlusions in most videos, objects leaving and re-entering the frame.
    """

    height: int = 256
    width: int = 512
    frames: int = 30
    objects: int = 10
    difficulty: float = 0.5
    void_border: int = 3
    pan_speed: float = 1.0  # camera pan in pixels per frame at width 512

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise ValueError("synthetic frames must be at least 32x32 pixels")
        if self.frames < 1 or self.objects < 0:
            raise ValueError("frames must be >= 1 and objects >= 0")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError("difficulty must lie in [0, 1]")


@dataclass(frozen=True)
class WorldClasses:
    """Category ids of the label space for each world kind that it can hold."""

    stuff: dict[str, int]
    things: dict[str, int]
    thing_ids: frozenset[int] = frozenset()  # categories that carry instance ids

    def tracked(self, category: int) -> bool:
        return category in self.thing_ids


def world_classes(labels: LabelSpace) -> WorldClasses:
    """Map the world's kinds onto ``labels`` by category name (see module docstring)."""
    names = {c.name.lower(): c for c in labels.categories}
    stuff_cats = [c for c in labels.categories if not c.isthing]
    fallback = next((names[n] for n in _FALLBACK_STUFF if n in names), None)
    if fallback is None and stuff_cats:
        fallback = stuff_cats[0]
    stuff: dict[str, int] = {}
    for kind, candidates in _STUFF_NAMES.items():
        cat = next((names[n] for n in candidates if n in names and not names[n].isthing), None)
        cat = cat or fallback
        if cat is not None:
            stuff[kind] = cat.id
    # Objects become thing categories; in a semantic-only label space (VSPW) they keep their
    # class and get no instance id.
    semantic_only = not labels.thing_ids
    things: dict[str, int] = {}
    for kind, candidates in _THING_NAMES.items():
        cat = next((names[n] for n in candidates
                    if n in names and (names[n].isthing or semantic_only)), None)
        if cat is not None:
            things[kind] = cat.id
    if not stuff or not things:
        raise ValueError(f"label space {labels.name!r} lacks stuff or thing classes for the world")
    return WorldClasses(stuff=stuff, things=things, thing_ids=frozenset(labels.thing_ids))


# ---------------------------------------------------------------------------------------------
# Textures


def _noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth value noise in [-1, 1], ``(h, w)`` float32, features about ``cell`` px wide."""
    small = rng.uniform(-1, 1, (max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _stuff_texture(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """``(h, w, 3)`` float32 RGB in [0, 255] for a stuff kind over the whole world canvas.

    Built from a row and a column coordinate broadcast against each other (patterns of rows
    and columns), not full coordinate grids: the same values, a fraction of the work."""
    yy = np.arange(h, dtype=np.float32)[:, None]  # (h, 1)
    xx = np.arange(w, dtype=np.float32)[None, :]  # (1, w)
    fine = rng.normal(0, 1, (h, w))  # drawn for every kind: the stream stays the same

    def flat(color: tuple[float, float, float]) -> np.ndarray:
        return np.broadcast_to(np.array(color, dtype=np.float32), (h, w, 3))

    def channels(*planes: np.ndarray) -> np.ndarray:
        return np.stack([np.broadcast_to(p, (h, w)) for p in planes], -1)

    if kind == "sky":
        base = channels(110 + 0.25 * yy, 160 + 0.2 * yy, 235 - 0.05 * yy)
        base += 25 * _noise(rng, h, w, 48)[..., None].clip(0, 1)  # clouds
    elif kind == "building":
        windows = ((xx % 22) < 11) & ((yy % 26) < 13)
        base = np.where(windows[..., None], flat((70, 80, 100)), flat((150, 110, 90)))
        base += 10 * _noise(rng, h, w, 30)[..., None]
    elif kind == "wall":
        bricks = ((yy % 10) < 1) | (((xx + 12 * ((yy // 10) % 2)) % 24) < 1)
        base = np.where(bricks[..., None], flat((120, 110, 95)), flat((205, 190, 150)))
    elif kind == "vegetation":
        leaves = _noise(rng, h, w, 5)
        base = np.stack([40 + 30 * leaves, 120 + 50 * leaves, 35 + 20 * leaves], -1)
    elif kind == "road":
        base = flat((85, 85, 90)) + 6 * fine.astype(np.float32)[..., None]
    elif kind == "sidewalk":
        tiles = ((xx % 16) < 1) | ((yy % 8) < 1)
        base = np.where(tiles[..., None], flat((140, 135, 130)), flat((185, 180, 170)))
    elif kind == "terrain":
        grain = _noise(rng, h, w, 3)
        base = np.stack([150 + 25 * grain, 135 + 20 * grain, 60 + 10 * grain], -1)
    else:  # pole
        stripes = 60 + 0.3 * (xx % 10)
        base = channels(stripes, stripes, 65 + 0 * yy)
    return base.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Scene layout (world canvas coordinates; the camera crops a moving window of it)


@dataclass
class _Thing:
    kind: str
    track: int
    x: float  # world x of the box centre
    y: float  # frame y of the foot point (bottom of the box)
    vx: float
    vy: float
    w: int
    h: int
    colors: np.ndarray  # (3, 3) float32: the instance's palette
    crowd: bool = False


def _layout(cfg: SynthConfig, rng: np.random.Generator, canvas_w: int) -> tuple[np.ndarray, int]:
    """Stuff kind index per canvas pixel ``(H, canvas_w)`` uint8 and the horizon row."""
    h = cfg.height
    kinds = list(_STUFF_NAMES)
    k = {name: i for i, name in enumerate(kinds)}
    grid = np.full((h, canvas_w), k["sky"], dtype=np.uint8)
    horizon = int(h * rng.uniform(0.38, 0.48))
    x = 0
    while x < canvas_w:  # a skyline of buildings, walls and trees
        bw = int(rng.uniform(0.12, 0.3) * cfg.width)
        top = int(horizon - rng.uniform(0.12, 0.32) * h)
        kind = rng.choice(["building", "building", "wall", "vegetation"])
        grid[max(top, 0) : horizon, x : x + bw] = k[str(kind)]
        if kind == "vegetation":  # a rounded crown
            cv2.ellipse(grid, (x + bw // 2, top), (bw // 2, bw // 4), 0, 180, 360, k["vegetation"], -1)
        x += bw
    far_walk = horizon + int(0.08 * h)
    road_end = far_walk + int(rng.uniform(0.28, 0.34) * h)
    grid[horizon:far_walk] = k["sidewalk"]
    grid[far_walk:road_end] = k["road"]
    grid[road_end:] = k["sidewalk"]
    patch_top = road_end + int(0.06 * h)
    for _ in range(max(1, canvas_w // 200)):  # grass verges on the near sidewalk
        px = int(rng.uniform(0, canvas_w))
        grid[patch_top:, px : px + int(rng.uniform(0.08, 0.2) * cfg.width)] = k["terrain"]
    return grid, horizon


def _occluders(cfg: SynthConfig, rng: np.random.Generator, canvas_w: int, horizon: int) -> list[tuple[str, int, int, int]]:
    """Foreground stuff drawn over things: (kind, x0, x1, top row) in canvas coordinates."""
    out = []
    n_poles = 1 + int(round(2 * cfg.difficulty * rng.uniform(0.5, 1.5)))
    for _ in range(n_poles):
        px = int(rng.uniform(0.1, 0.9) * canvas_w)
        out.append(("pole", px, px + max(3, cfg.width // 60), int(0.1 * cfg.height)))
    n_hedges = int(rng.uniform() < 0.4 + 1.2 * cfg.difficulty) + int(rng.uniform() < cfg.difficulty)
    for _ in range(n_hedges):  # hedges hide things for a while; they come back with their id
        hx = int(rng.uniform(0.15, 0.75) * canvas_w)
        width = int(rng.uniform(0.12, 0.2) * cfg.width)
        out.append(("vegetation", hx, hx + width, horizon - int(0.05 * cfg.height)))
    return out


# ---------------------------------------------------------------------------------------------
# Things: shapes and textures in box-local coordinates


def _thing_shape(kind: str, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask ``(h, w)`` bool and palette index ``(h, w)`` uint8 (0 main, 1 second, 2 dark)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xx + 0.5) / w, (yy + 0.5) / h  # box-normalised coordinates
    part = np.zeros((h, w), dtype=np.uint8)
    if kind == "person":
        head = (u - 0.5) ** 2 / 0.09 + (v - 0.1) ** 2 / 0.01 < 1
        torso = ((u - 0.5) ** 2 / 0.16 + (v - 0.38) ** 2 / 0.05 < 1) & (v > 0.16)
        legs = (v >= 0.5) & (((u > 0.24) & (u < 0.46)) | ((u > 0.54) & (u < 0.76)))
        mask = head | torso | legs
        part[legs] = 1
        part[head] = 2
    elif kind == "car":
        body = (v > 0.4) & (v < 0.85) & (np.abs(u - 0.5) < 0.49)
        cabin = (v >= 0.05) & (v <= 0.42) & (np.abs(u - 0.5) < 0.3 + 0.12 * (v - 0.05) / 0.37)
        wheels = ((u - 0.22) ** 2 * (w / h) ** 2 + (v - 0.84) ** 2 < 0.024) | (
            (u - 0.78) ** 2 * (w / h) ** 2 + (v - 0.84) ** 2 < 0.024
        )
        mask = body | cabin | wheels
        part[cabin & (v > 0.1)] = 1
        part[wheels] = 2
    elif kind == "bus":
        mask = (v > 0.02) & (v < 0.9) & (np.abs(u - 0.5) < 0.495)
        windows = (v > 0.15) & (v < 0.45) & ((xx % max(4, w // 8)) > max(1, w // 40))
        wheels = ((np.abs(u - 0.2) < 0.06) | (np.abs(u - 0.8) < 0.06)) & (v >= 0.82) & (v < 0.98)
        mask |= wheels
        part[windows & mask] = 1
        part[wheels] = 2
    else:  # dog
        body = (u - 0.5) ** 2 / 0.12 + (v - 0.45) ** 2 / 0.05 < 1
        head = (u - 0.85) ** 2 / 0.02 + (v - 0.25) ** 2 / 0.03 < 1
        legs = (v > 0.5) & (((u > 0.25) & (u < 0.33)) | ((u > 0.65) & (u < 0.73)))
        mask = body | head | legs
        part[head] = 1
        part[legs] = 2
    return mask, part


_THING_SIZE = {"person": (0.09, 0.26), "car": (0.28, 0.16), "bus": (0.5, 0.28), "dog": (0.13, 0.1)}
_THING_SPEED = {"person": 2.0, "car": 6.0, "bus": 4.0, "dog": 4.0}
_THING_WEIGHT = {"person": 4, "car": 3, "bus": 1, "dog": 1}


def _palette(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "person":
        return np.array([rng.uniform(40, 230, 3), rng.uniform(20, 90, 3), [225, 185, 150]])
    if kind == "car":
        main = rng.uniform(30, 240, 3)
        return np.array([main, [60, 75, 95], [20, 20, 20]])
    if kind == "bus":
        return np.array([[230, rng.uniform(120, 200), 30], [50, 60, 80], [20, 20, 20]])
    return np.array([rng.uniform(90, 170, 3) * [1.0, 0.75, 0.5], [60, 40, 30], [50, 35, 25]])


def _spawn(
    cfg: SynthConfig, rng: np.random.Generator, world: WorldClasses, horizon: int, canvas_w: int,
    cam0: float,
) -> list[_Thing]:
    kinds = [k for k in _THING_NAMES if k in world.things]
    weights = np.array([_THING_WEIGHT[k] for k in kinds], dtype=float)
    h, scale_w = cfg.height, cfg.width / 512
    things = []
    for track in range(1, cfg.objects + 1):
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        foot = rng.uniform(horizon + 0.12 * h, h - 0.02 * h)
        depth = (foot - horizon) / (h - horizon)  # 0 at the horizon, 1 at the bottom
        size = 0.5 + 0.9 * depth
        fw, fh = _THING_SIZE[kind]
        bw, bh = max(6, int(fw * cfg.width * size * 0.7)), max(8, int(fh * h * size * 1.2))
        speed = _THING_SPEED[kind] * scale_w * (0.5 + cfg.difficulty) * rng.uniform(0.5, 1.5)
        direction = rng.choice([-1, 1])
        if track % 3 == 0:  # starts half out of view, walking out: it leaves and comes back
            x = cam0 + (cfg.width + 0.2 * bw if direction > 0 else -0.2 * bw)
        else:
            x = cam0 + rng.uniform(0, cfg.width)
        things.append(
            _Thing(kind, track, x, foot, speed * direction, rng.uniform(-0.3, 0.3),
                   bw, bh, _palette(kind, rng).astype(np.float32))
        )
    if "person" in world.things and rng.uniform() < 0.5 * cfg.difficulty:
        # a far-away crowd: thing pixels without individual ids (instance 0)
        cx = cam0 + rng.uniform(0.1, 0.9) * cfg.width
        for _ in range(int(rng.integers(4, 8))):
            things.append(
                _Thing("person", 0, cx + rng.uniform(-25, 25) * scale_w,
                       horizon + 0.1 * h + rng.uniform(-3, 3), 0.3 * rng.uniform(-1, 1), 0.0,
                       max(4, int(0.025 * cfg.width)), max(8, int(0.12 * h)),
                       _palette("person", rng).astype(np.float32), crowd=True)
            )
    return things


def _step(thing: _Thing, cam_x: float, cfg: SynthConfig, horizon: int) -> None:
    """Move one frame; turn around a little outside the view so objects leave and come back."""
    thing.x += thing.vx
    thing.y = float(np.clip(thing.y + thing.vy, horizon + 0.1 * cfg.height, cfg.height - 2))
    margin = 0.5 * thing.w + 0.03 * cfg.width
    if thing.x < cam_x - margin and thing.vx < 0 or thing.x > cam_x + cfg.width + margin and thing.vx > 0:
        thing.vx = -thing.vx
    if thing.y in (horizon + 0.1 * cfg.height, cfg.height - 2):
        thing.vy = -thing.vy


# ---------------------------------------------------------------------------------------------
# Rendering


def generate_video(
    cfg: SynthConfig, labels: LabelSpace, seed: int, index: int, name: str | None = None,
    step: int = 1,
) -> Video:
    """Render video ``index`` of the world seeded by ``seed``: panoptic and RGB frames, in
    memory. With ``step`` k > 1, every k-th frame of the video k times as long: the same world
    at 1/k of the frame rate, so everything moves k times as far between frames (fast motion)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    panoptic, rgb = [], []
    for pan, image in _render(cfg, labels, seed, index, step):
        panoptic.append(pan)
        rgb.append(image)
    return Video(name=name or f"{index:04d}", panoptic=panoptic, label_space=labels, rgb=rgb)


def stream_video(
    cfg: SynthConfig, labels: LabelSpace, seed: int, index: int, name: str | None = None,
) -> Video:
    """``generate_video`` (step 1) with frames rendered when read: reading the frames in order
    holds one frame in memory, so a video of any length can be written (``vpseg synth``).
    Reading an earlier frame again renders the video anew from its start (the world is
    deterministic in its seed), so random access is correct but slow."""
    frames = _InOrder(lambda: _render(cfg, labels, seed, index, 1))
    pan = [functools.partial(frames.get, i, 0) for i in range(cfg.frames)]
    rgb = [functools.partial(frames.get, i, 1) for i in range(cfg.frames)]
    return Video(name=name or f"{index:04d}", panoptic=LazyFrames(pan), label_space=labels,
                 rgb=LazyFrames(rgb))


class _InOrder:
    """Items of a restartable iterator by position, keeping only the last one."""

    def __init__(self, start: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> None:
        self._start = start
        self._items: Iterator[tuple[np.ndarray, np.ndarray]] | None = None
        self._position = -1
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def get(self, index: int, part: int) -> np.ndarray:
        if self._items is None or index < self._position:
            self._items, self._position = self._start(), -1
        while self._position < index:
            self._last = next(self._items)
            self._position += 1
        assert self._last is not None
        return self._last[part]


def _render(
    cfg: SynthConfig, labels: LabelSpace, seed: int, index: int, step: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(panoptic, RGB) of each frame of video ``index`` in order (``generate_video``)."""
    rng = np.random.default_rng([seed, index])
    world = world_classes(labels)
    h, w, t_len = cfg.height, cfg.width, cfg.frames * step
    pan_speed = cfg.pan_speed * w / 512 * rng.uniform(0.5, 1.5) * rng.choice([-1, 1])
    travel = int(np.ceil(abs(pan_speed) * t_len))
    canvas_w = w + travel + 1
    cam0 = float(travel if pan_speed < 0 else 0)

    grid, horizon = _layout(cfg, rng, canvas_w)
    kinds = list(_STUFF_NAMES)
    stuff_ids = np.array([world.stuff[k] for k in kinds], dtype=np.int64)
    textures = np.stack([_stuff_texture(k, rng, h, canvas_w) for k in kinds])
    canvas_rgb = np.take_along_axis(textures, grid[None, :, :, None].astype(np.int64), 0)[0]
    canvas_sem = stuff_ids[grid]
    occluders = _occluders(cfg, rng, canvas_w, horizon)
    things = _spawn(cfg, rng, world, horizon, canvas_w, cam0)
    shapes = {id(t): _thing_shape(t.kind, t.h, t.w) for t in things}
    noise_sigma = 2.0 + 8.0 * cfg.difficulty
    div, ignore = labels.label_divisor, labels.ignore_label

    for t in range(t_len):
        cam_x = cam0 + pan_speed * t
        cx = int(round(cam_x))
        img = canvas_rgb[:, cx : cx + w].copy()
        pan = (canvas_sem[:, cx : cx + w] * div).astype(np.int64)
        for thing in sorted(things, key=lambda th: th.y):  # far (small y) first
            _paint_thing(img, pan, thing, shapes[id(thing)], cam_x, world, div)
        for kind, x0, x1, top in occluders:
            a, b = max(x0 - cx, 0), min(x1 - cx, w)
            if a < b:
                img[top:, a:b] = textures[kinds.index(kind), top:, cx + a : cx + b]
                pan[top:, a:b] = world.stuff[kind] * div
        img *= rng.uniform(0.92, 1.08)  # lighting flicker
        img += rng.normal(0, noise_sigma, img.shape).astype(np.float32)
        bd = cfg.void_border
        if bd > 0:
            for region in (np.s_[:bd], np.s_[-bd:], np.s_[:, :bd], np.s_[:, -bd:]):
                pan[region] = ignore * div
                img[region] = 0
        if t % step == 0:
            yield pan.astype(PANOPTIC_DTYPE), np.clip(img, 0, 255).astype(np.uint8)
        for thing in things:
            _step(thing, cam_x, cfg, horizon)


def _paint_thing(
    img: np.ndarray,
    pan: np.ndarray,
    thing: _Thing,
    shape: tuple[np.ndarray, np.ndarray],
    cam_x: float,
    world: WorldClasses,
    div: int,
) -> None:
    h, w = pan.shape
    mask, part = shape
    if thing.vx < 0:  # face the direction of motion
        mask, part = mask[:, ::-1], part[:, ::-1]
    x0 = int(round(thing.x - cam_x - thing.w / 2))
    y0 = int(round(thing.y - thing.h))
    a, b = max(x0, 0), min(x0 + thing.w, w)
    c, d = max(y0, 0), min(y0 + thing.h, h)
    if a >= b or c >= d:
        return
    m = mask[c - y0 : d - y0, a - x0 : b - x0]
    colors = thing.colors[part[c - y0 : d - y0, a - x0 : b - x0]]
    shade = 1.0 - 0.25 * np.linspace(0, 1, d - c, dtype=np.float32)[:, None, None]
    img[c:d, a:b][m] = (colors * shade)[m]
    category = world.things[thing.kind]
    instance = thing.track if world.tracked(category) and not thing.crowd else 0
    pan[c:d, a:b][m] = category * div + instance


def generate(
    cfg: SynthConfig, labels: LabelSpace, *, seed: int = 0, videos: int = 8,
    names: Sequence[str] | None = None,
) -> Iterator[Video]:
    """Yield ``videos`` synthetic videos, each rendered as its frames are read
    (``stream_video``), so memory stays flat in the number and the length of the videos."""
    for i in range(videos):
        yield stream_video(cfg, labels, seed, i, None if names is None else names[i])
