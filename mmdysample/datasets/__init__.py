# Copyright (c) mmdysample contributors. All rights reserved.
"""Dataset utilities of mmdysample.

The data checks (:func:`CheckedDataset`, :class:`CheckSegLabels`) and,
where mmseg is installed, DepthFormer's NYU transforms (:class:`NYUCrop`,
:class:`ColorAug`) are registered on import. The synthetic dataset
generator is imported lazily, so that ``python -m mmdysample.datasets.synthetic`` runs without importing the
module twice and importing this package stays cheap.
"""
import importlib
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, List

from .checks import CheckedDataset, CheckSegLabels, check_files_exist

if find_spec('mmseg') is not None:
    # DepthFormer's NYU training transforms, in mmseg's TRANSFORMS
    from .depth_transforms import ColorAug, NYUCrop  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from .synthetic import (ADE_METAINFO, COCO_METAINFO, PANOPTIC_CLASSES,
                            PANOPTIC_METAINFO, PANOPTIC_PALETTE, SEG_CLASSES,
                            SEG_PALETTE, STUFF_CLASSES, STUFF_PALETTE,
                            THING_CLASSES, THING_PALETTE, VALID_TASKS,
                            generate_synthetic_dataset, render_scene)

__all__ = [
    'THING_CLASSES', 'STUFF_CLASSES', 'SEG_CLASSES', 'PANOPTIC_CLASSES',
    'THING_PALETTE', 'STUFF_PALETTE', 'SEG_PALETTE', 'PANOPTIC_PALETTE',
    'COCO_METAINFO', 'PANOPTIC_METAINFO', 'ADE_METAINFO', 'VALID_TASKS',
    'generate_synthetic_dataset', 'render_scene', 'CheckedDataset',
    'CheckSegLabels', 'check_files_exist'
]


_LAZY = frozenset(__all__) - {
    'CheckedDataset', 'CheckSegLabels', 'check_files_exist'
}


def __getattr__(name: str) -> Any:
    """Resolve the public names from :mod:`.synthetic` on first use."""
    if name in _LAZY:
        module = importlib.import_module('.synthetic', __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> List[str]:
    return sorted(list(globals()) + __all__)
