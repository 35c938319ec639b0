# The built-in fine scenes (thin wires, fences and rings, small shapes, fine
# region borders) as an ADE20K-style semantic segmentation set: labels 1..12,
# 0 = "other", read with reduce_zero_label=True. Written under
# data/synthetic_fine by `python tools/misc/generate_synthetic_data.py
# --scenes fine`. Class names and colours are
# mmdysample.datasets.synthetic.FINE_SEG_CLASSES / FINE_SEG_PALETTE; the
# pipelines and evaluators are those of the default scenes.
_base_ = './synthetic_ade.py'
data_root = 'data/synthetic_fine/ade/'
metainfo = dict(
    classes=('sky', 'ground', 'water', 'foliage', 'fence', 'wire', 'circle',
             'rectangle', 'triangle', 'star', 'ring', 'cross'),
    palette=[(140, 185, 240), (110, 135, 70), (40, 90, 150), (45, 95, 45),
             (225, 220, 205), (35, 30, 30), (225, 45, 45), (250, 205, 35),
             (170, 60, 220), (25, 25, 30), (255, 105, 180), (245, 140, 30)])
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
