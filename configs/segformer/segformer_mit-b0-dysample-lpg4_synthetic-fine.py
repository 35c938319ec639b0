# segformer_mit-b0-dysample-lpg4_synthetic.py on the fine built-in scenes
# (`--scenes fine`: thin structures, small objects, fine borders, 12 classes),
# where the upsampler has more to do: see docs/user_guides/builtin_data.md.
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/synthetic_fine_ade.py',
    '../_base_/synthetic_runtime_mmseg.py'
]
custom_imports = dict(imports=['mmdysample'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(init_cfg=None),
    decode_head=dict(
        type='DySampleSegformerHead',
        channels=128,
        num_classes=12,  # len(FINE_SEG_CLASSES)
        norm_cfg=norm_cfg,
        upsample_cfg=dict(type='DySample')))
