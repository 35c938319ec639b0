# Copyright (c) mmdysample contributors. All rights reserved.
"""A scene, its renderers and the kinds of scene.

:func:`render_scene` composes the two parts of a scene in a fixed order of
random draws: the stuff background (:mod:`.textures`), then the placement
and the painting of the things (:mod:`.shapes`). The format writers only
see the resulting :class:`Scene`, so another kind of scene is another
function that returns one: :func:`render_fine_scene` draws the fine scenes
(:mod:`.fine_textures`, :mod:`.fine_shapes`). :data:`SCENE_KINDS` names
every kind with its renderer and its classes; it is the one place the
names ``'default'`` and ``'fine'`` live.
"""
from typing import Callable, Dict, List, NamedTuple

import numpy as np

from .fine_shapes import place_fine_things
from .fine_textures import render_fine_background
from .metainfo import DEFAULT_CLASSES, FINE_CLASSES, ClassSet
from .shapes import paint_things, place_things
from .textures import render_background

__all__ = [
    'Scene', 'render_scene', 'render_fine_scene', 'SceneKind',
    'SCENE_KINDS', 'get_scene_kind'
]


class Scene:
    """One rendered image with its dense annotations.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        stuff_map (np.ndarray): ``(H, W)`` int array with the index into
            ``classes.stuff`` of the stuff behind every pixel.
        instance_map (np.ndarray): ``(H, W)`` int array, ``-1`` where no
            thing is visible, otherwise the index into :attr:`labels`.
        labels (list[int]): Index into ``classes.things`` of every visible
            instance, in drawing order.
        classes (ClassSet): The classes of the scene's kind. Defaults to
            those of the default scenes.
    """

    def __init__(self,
                 image: np.ndarray,
                 stuff_map: np.ndarray,
                 instance_map: np.ndarray,
                 labels: List[int],
                 classes: ClassSet = DEFAULT_CLASSES) -> None:
        self.image = image
        self.stuff_map = stuff_map
        self.instance_map = instance_map
        self.labels = labels
        self.classes = classes

    def semantic_map(self) -> np.ndarray:
        """Return ADE-style labels (stuff, then things, from 1) as uint8."""
        sem = self.stuff_map.astype(np.uint8) + 1
        for idx, label in enumerate(self.labels):
            sem[self.instance_map == idx] = len(self.classes.stuff) + label + 1
        return sem


def _compose(rng: np.random.Generator, height: int, width: int,
             background: Callable, place: Callable,
             classes: ClassSet) -> Scene:
    """Background, then things placed and painted on it, in this order."""
    image, stuff_map = background(rng, height, width)
    masks, labels, colours = place(rng, height, width)
    instance_map = paint_things(rng, image, masks, colours)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Scene(image, stuff_map, instance_map, labels, classes)


def render_scene(rng: np.random.Generator, height: int,
                 width: int) -> Scene:
    """Render one synthetic scene.

    Args:
        rng (np.random.Generator): Source of randomness; the scene is a
            pure function of its state.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        Scene: The RGB image and its stuff / instance maps.
    """
    return _compose(rng, height, width, render_background, place_things,
                    DEFAULT_CLASSES)


def render_fine_scene(rng: np.random.Generator, height: int,
                      width: int) -> Scene:
    """Render one fine scene: thin structures, small things, fine borders.

    Args:
        rng (np.random.Generator): Source of randomness; the scene is a
            pure function of its state.
        height (int): Image height in pixels.
        width (int): Image width in pixels.

    Returns:
        Scene: The RGB image and its stuff / instance maps, with the classes
        :data:`~.metainfo.FINE_CLASSES`.
    """
    return _compose(rng, height, width, render_fine_background,
                    place_fine_things, FINE_CLASSES)


class SceneKind(NamedTuple):
    """A kind of scene: how to render one and which classes it has.

    Attributes:
        render (Callable): ``render(rng, height, width) -> Scene``.
        classes (ClassSet): The classes of its scenes.
        description (str): One line for ``--help`` and the docs.
    """
    render: Callable[[np.random.Generator, int, int], Scene]
    classes: ClassSet
    description: str


#: The kinds of scene, by the name ``scenes=`` / ``--scenes`` takes.
SCENE_KINDS: Dict[str, SceneKind] = {
    'default':
    SceneKind(render_scene, DEFAULT_CLASSES,
              'large convex shapes on two or three smooth regions'),
    'fine':
    SceneKind(
        render_fine_scene, FINE_CLASSES,
        'thin wires, fences and rings, small shapes, fine region borders'),
}


def get_scene_kind(name: object) -> SceneKind:
    """Return the kind of scene called ``name``.

    Args:
        name (str): A key of :data:`SCENE_KINDS`.

    Returns:
        SceneKind: Its renderer and classes.

    Raises:
        ValueError: If ``name`` is not a kind; the message lists the kinds.
    """
    if not isinstance(name, str) or name not in SCENE_KINDS:
        raise ValueError(f'scenes must be one of {tuple(SCENE_KINDS)}, got '
                         f'{name!r}')
    return SCENE_KINDS[name]
