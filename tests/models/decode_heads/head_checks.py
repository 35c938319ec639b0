# Copyright (c) mmdysample contributors. All rights reserved.
"""What the tests of the UPerNet, DeepLabV3+ and Semantic FPN hosts share:
the feature sizes, the norm check of mmseg's tests, and the check that a
head trains; the helpers of every host come from ``host_checks``."""
from host_checks import (UPSAMPLERS, count_params,  # noqa: F401
                         make_feats, randomize_, same_signature)
from host_checks import check_trains as host_check_trains
from mmcv.cnn import ConvModule
from mmengine.utils.dl_utils.parrots_wrapper import SyncBatchNorm

#: An ADE20K validation image, 512 x 683, through a stride-4..32 backbone
#: (each stride-2 layer maps H to ceil(H / 2)).
ADE_SIZES = [(128, 171), (64, 86), (32, 43), (16, 22)]
#: A 67 x 91 image: odd sizes at every level, small enough for the zoo's
#: channels.
ODD_SIZES = [(17, 23), (9, 12), (5, 6), (3, 3)]


def check_trains(head, feats):
    """:func:`host_checks.check_trains` of a head on ``feats``; its
    output."""
    return host_check_trains(head, lambda module: [module(feats)])[0]


def conv_has_norm(module, sync_bn):
    """mmseg's ``tests/test_models/test_heads/utils.py::_conv_has_norm``
    (OpenMMLab, Apache-2.0), re-typed: every ConvModule has a norm (a
    SyncBN one when ``sync_bn``)."""
    for m in module.modules():
        if isinstance(m, ConvModule):
            if not m.with_norm:
                return False
            if sync_bn and not isinstance(m.bn, SyncBatchNorm):
                return False
    return True
