# Copyright (c) mmdysample contributors. All rights reserved.
"""A scene and its renderer: a textured background with things on top.

:func:`render_scene` composes the two parts of a scene in a fixed order of
random draws: the stuff background (:mod:`.textures`), then the placement
and the painting of the things (:mod:`.shapes`). The format writers only
see the resulting :class:`Scene`, so another kind of scene is another
function that returns one.
"""
from typing import List

import numpy as np

from .metainfo import STUFF_CLASSES
from .shapes import paint_things, place_things
from .textures import render_background

__all__ = ['Scene', 'render_scene']


class Scene:
    """One rendered image with its dense annotations.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        stuff_map (np.ndarray): ``(H, W)`` int array with the index into
            :data:`STUFF_CLASSES` of the stuff behind every pixel.
        instance_map (np.ndarray): ``(H, W)`` int array, ``-1`` where no
            thing is visible, otherwise the index into :attr:`labels`.
        labels (list[int]): Index into :data:`THING_CLASSES` of every
            visible instance, in drawing order.
    """

    def __init__(self, image: np.ndarray, stuff_map: np.ndarray,
                 instance_map: np.ndarray, labels: List[int]) -> None:
        self.image = image
        self.stuff_map = stuff_map
        self.instance_map = instance_map
        self.labels = labels

    def semantic_map(self) -> np.ndarray:
        """Return ADE-style labels (``1..len(SEG_CLASSES)``) as uint8."""
        sem = self.stuff_map.astype(np.uint8) + 1
        for idx, label in enumerate(self.labels):
            sem[self.instance_map == idx] = len(STUFF_CLASSES) + label + 1
        return sem


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
    image, stuff_map = render_background(rng, height, width)
    masks, labels, colours = place_things(rng, height, width)
    instance_map = paint_things(rng, image, masks, colours)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Scene(image, stuff_map, instance_map, labels)
