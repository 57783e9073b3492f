"""The named choices of L3Locator's settings, in one torch-free place.

The modules that act on a choice import it from here (:mod:`.modelfile`, :mod:`.preprocessing`,
:mod:`.training.train`, :mod:`.training.cache`), and so do command-line help and the Slicer
panels, which must open without importing torch.
"""

#: Architectures a model file may name (torchvision names). ResNet50 is the paper's; ResNet18
#: serves quick tests.
ARCHITECTURES = ("resnet50", "resnet18")

#: How a slice becomes the network's three input channels: ``"repeat"`` (the paper: one slice
#: in all three) or ``"neighbors"`` (2.5D: the slices a fixed distance in mm below and above).
CHANNEL_MODES = ("repeat", "neighbors")

#: How a slice's clipped HU become [0, 1] (preprocessing step 4). ``"percentile"`` (the paper's
#: histogram stretch): the slice's own 1st and 99th percentiles map to 0 and 1, so the grey of a
#: tissue depends on what else is in the slice (bone share, contrast agent, field of view).
#: ``"window"``: the clip window ``[hu_min, hu_max]`` maps to [0, 1], the same for every slice.
STRETCH_MODES = ("percentile", "window")

#: Training precisions (autocast of the forward pass; master weights stay float32). Not the
#: engine's scoring precisions (:data:`l3locator.engine.PRECISIONS`): training has ``"fp16"``
#: (with a gradient scaler, on CUDA) and no ``"mixed"``, and its ``"auto"`` picks bf16 or fp16 on a GPU.
TRAINING_PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: Which training samples are augmented. ``"paper"``: only the oversampled L3 copies, with the
#: paper's four transforms. ``"all-slices"``: every sample, L3 or not, gets a random variant (the
#: paper's transforms plus zoom, then intensity changes), so that "looks augmented" cannot become
#: a cue for "is L3" (with ``"paper"`` most L3 samples the network sees are transformed and no
#: negative is).
AUGMENTATIONS = ("paper", "all-slices")

#: The preprocessed-slice cache's folder name inside a training run's output folder, unless
#: another is given.
CACHE_FOLDER = "slice_cache"

#: What ``l3locator train --init-model`` takes for the shipped model (else a model file's path).
SHIPPED_MODEL = "default"

#: The stages of a ResNet from the input, the units ``--freeze-layers N`` counts: the stem
#: (``conv1`` and ``bn1``) and the four residual stages. The classifier ``fc`` always trains.
RESNET_STAGE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")
