"""Training building blocks: cases and truth, cache, splits, epoch drawing, augmentation, the
design parameters (each must reach the training loop), clipping, determinism and progress lines."""

import io
import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, synthetic_volume
from l3locator.engine import score_volume
from l3locator.errors import InputError, LabelError
from l3locator.labels import L3Label, write_label
from l3locator.preprocessing import PreprocessingConfig, preprocess_volume
from l3locator.training import cache as cache_module
from l3locator.training import train as train_module
from l3locator.training.augment import (
    AugmentationRanges,
    IntensityRanges,
    augment_batch,
    augment_intensity,
    augment_samples,
    random_affine_matrices,
)
from l3locator.training.cache import PreparedCase, prepare_case, prepare_cases
from l3locator.training.clipping import clip_gradients
from l3locator.training.dataset import (
    data_summary, discover_cases, folder_summary, patient_of, slice_targets, training_blockers, truth_index,
)
from l3locator.training.design import (
    CLASS_WEIGHT_CLAMP, DesignParameters, class_loss_weights, params_from_point, point_from_params, search_space,
)
from l3locator.training.progress import KEYS, PREFIX, ProgressReporter
from l3locator.training.sampling import EpochDataset, EpochPlan, cut_scan_range, near_l3_slices, plan_epoch
from l3locator.training.splits import kfold_cases, validation_split
from l3locator.training.train import TrainingBudget, case_probabilities, train_model, weighted_loss
from l3locator.phantoms.writing import write_nifti



pytestmark = pytest.mark.usefixtures("one_thread")




def write_json_case(folder, name: str, num_slices: int = 24, l3_range=(8, 12), seed: int = 0):
    volume = synthetic_volume(num_slices, l3_range, seed=seed)
    write_nifti(volume, folder / f"{name}.nii.gz")
    label = L3Label(case=name, image=f"{name}.nii.gz", l3_slice_index=sum(l3_range) // 2, l3_slice_range=l3_range,
                    source="manual", num_slices=num_slices)
    write_label(label, folder / f"{name}.l3.json")
    return volume


@pytest.fixture(scope="module")
def case_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cases")
    for n in range(5):
        write_json_case(folder, f"p{n}", l3_range=(6 + n, 10 + n), seed=n)
    return folder


@pytest.fixture(scope="module")
def prepared(case_folder, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return prepare_cases(discover_cases(case_folder).cases, TINY, cache)


def tiny_budget(**overrides) -> TrainingBudget:
    values = {"epochs": 1, "arch": "resnet18", "preprocessing": TINY, "device": "cpu", "precision": "fp32", "seed": 3}
    values.update(overrides)
    return TrainingBudget(**values)


# --- cases, truth, cache, splits ------------------------------------------------------------------

def test_discovery_pairs_labels_with_their_ct_and_skips_unlabelled(tmp_path):
    write_json_case(tmp_path, "a")
    volume = synthetic_volume(20, (5, 9))
    write_nifti(volume, tmp_path / "b.nii.gz")
    vertebrae = np.zeros(volume.voxels.shape, np.uint8)
    vertebrae[5:10, 10:20, 10:20] = 22
    vertebrae[10:15, 10:20, 10:20] = 21
    nib.save(nib.Nifti1Image(vertebrae.T, volume.ijk_to_ras), tmp_path / "b_vertebrae.nii.gz")
    write_nifti(volume, tmp_path / "unlabelled.nii.gz")
    (tmp_path / "outputs").mkdir()  # a sub-folder without a label is ignored

    found = discover_cases(tmp_path)
    assert [(c.name, c.label_kind) for c in found.cases] == [("a", "json"), ("b", "vertebra_map")]
    assert [p.name for p in found.unlabelled] == ["unlabelled.nii.gz"]
    cases = prepare_cases(found.cases, TINY, tmp_path / ".cache")
    assert cases[0].l3_range == (8, 12)
    assert cases[1].l3_range == (5, 9)  # from the vertebra map, L3 = 22 only
    assert cases[1].targets().sum() == 5 and cases[1].targets()[5] == 1 and cases[1].targets()[10] == 0


def test_orphan_label_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no labelled cases"):
        discover_cases(tmp_path)
    write_json_case(tmp_path, "a")
    (tmp_path / "a.nii.gz").rename(tmp_path / "elsewhere.nii.gz")
    with pytest.raises(LabelError, match="have no CT beside them.*a.l3.json"):
        discover_cases(tmp_path)


def test_label_that_does_not_fit_its_ct_is_rejected(tmp_path):
    write_json_case(tmp_path, "a", num_slices=24)
    write_nifti(synthetic_volume(30, (8, 12)), tmp_path / "a.nii.gz", overwrite=True)
    with pytest.raises(LabelError, match="24 slices.*30"):
        prepare_cases(discover_cases(tmp_path).cases, TINY, tmp_path / ".cache")


def test_cache_holds_the_shared_preprocessing_and_is_reused(tmp_path, monkeypatch):
    volume = write_json_case(tmp_path, "a")
    source = discover_cases(tmp_path).cases[0]
    case = prepare_case(source, TINY, tmp_path / "cache")
    stored = case.slices()
    assert stored.dtype == np.float16 and isinstance(stored, np.memmap)
    reference = preprocess_volume(volume, TINY).numpy()
    assert np.abs(stored.astype(np.float32) - reference).max() < 1e-3

    def no_reading(path):
        raise AssertionError("the CT was read again although the cache holds it")

    monkeypatch.setattr(cache_module, "load_ct", no_reading)
    again = prepare_case(source, TINY, tmp_path / "cache")
    assert again.slices_file == case.slices_file
    # Another input size is another cache entry (and needs the CT).
    with pytest.raises(AssertionError, match="read again"):
        prepare_case(source, PreprocessingConfig(input_size=48), tmp_path / "cache")
    # The channel mode does not change the stored slices.
    assert prepare_case(source, PreprocessingConfig(input_size=32, channel_mode="neighbors"), tmp_path / "cache").slices_file == case.slices_file
    # The stretch's white floor changes them: another entry, whose slices are floored.
    with pytest.raises(AssertionError, match="read again"):
        prepare_case(source, replace(TINY, stretch_min_white_hu=300.0), tmp_path / "cache")


def test_cache_key_of_settings_without_the_later_options_is_unchanged():
    """Settings added after caches were written (``LATER_SLICE_SETTINGS``) enter the key only when
    set, so a cache written for the shipped model's settings is still found."""
    assert cache_module.settings_key(TINY) == cache_module._digest(
        [cache_module.CACHE_VERSION, {name: TINY.to_dict()[name] for name in cache_module.SLICE_SETTINGS}])
    assert cache_module.settings_key(replace(TINY, stretch_min_white_hu=300.0)) != cache_module.settings_key(TINY)


def test_targets_truth_and_patients():
    assert slice_targets(6, (2, 3)).tolist() == [0, 0, 1, 1, 0, 0]
    assert slice_targets(3, None).tolist() == [0, 0, 0]
    assert truth_index((10, 15)) == 12.5
    assert patient_of("p7__scan2") == "p7" and patient_of("p7") == "p7"


def test_folds_split_by_patient_and_are_seeded(prepared):
    cases = list(prepared) + [
        type(prepared[0])(**{**prepared[0].__dict__, "name": f"p0__{n}", "patient": "p0"}) for n in range(2)
    ]
    folds = kfold_cases(cases, 3, seed=1)
    names = [sorted(c.name for c in fold) for fold in folds]
    assert sorted(sum(names, [])) == sorted(c.name for c in cases)
    for fold in folds:
        patients = {c.patient for c in fold}
        outside = {c.patient for other in folds if other is not fold for c in other}
        assert not patients & outside
    assert names == [sorted(c.name for c in fold) for fold in kfold_cases(cases, 3, seed=1)]
    splittings = {tuple(tuple(sorted(c.name for c in fold)) for fold in kfold_cases(cases, 3, seed=s)) for s in range(6)}
    assert len(splittings) > 1  # the seed matters
    training, validation = validation_split(cases, 0.2, seed=1)
    assert validation and {c.patient for c in training}.isdisjoint({c.patient for c in validation})
    with pytest.raises(ValueError, match="at least 6 patients"):
        kfold_cases(cases, 6, seed=0)


# --- what one epoch trains on -----------------------------------------------------------------------

def test_oversampling_changes_the_class_ratio_by_the_requested_amount():
    targets = [slice_targets(100, (40, 49)), slice_targets(60, (10, 19))]  # 20 L3 of 160
    rng = np.random.default_rng(0)
    plain = plan_epoch(targets, rng)
    assert (len(plain), plain.num_l3, plain.num_augmented) == (160, 20, 0)
    for rate in (0.05, 0.1, 0.25):
        plan = plan_epoch(targets, np.random.default_rng(0), oversampling_rate=rate)
        extra = round(rate * 160)
        assert plan.num_augmented == extra and len(plan) == 160 + extra
        assert plan.num_l3 == 20 + extra
        assert plan.num_l3 / len(plan) == pytest.approx((20 + extra) / (160 + extra))
        assert np.all(plan.label[plan.augment] == 1)
        # augmented samples are copies of real L3 slices
        pairs = set(zip(plan.case_index[plan.augment], plan.slice_index[plan.augment]))
        assert all(targets[c][s] == 1 for c, s in pairs)


def test_negatives_are_subsampled_and_capped():
    targets = [slice_targets(100, (40, 49)), slice_targets(60, (10, 19))]
    plan = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.25)
    assert plan.num_l3 == 20 and len(plan) - plan.num_l3 == round(0.25 * 140)
    capped = plan_epoch(targets, np.random.default_rng(0), max_slices=50, oversampling_rate=0.2)
    # The cap keeps the class ratio of the draw (20 L3 of 160 slices), rounded: 6 L3 + 44 others.
    assert capped.num_l3 - capped.num_augmented == 6 and len(capped) - capped.num_augmented == 50
    assert capped.num_augmented == 10
    # More L3 slices than the cap (the case that once trained a model to see L3 everywhere).
    many = [slice_targets(100, (0, 59))]
    ratio = plan_epoch(many, np.random.default_rng(0), max_slices=20)
    assert len(ratio) == 20 and ratio.num_l3 == 12
    again = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.25)
    assert np.array_equal(plan.slice_index, again.slice_index)  # seeded


def test_near_l3_slices_are_the_neighbours_within_the_distance():
    targets = slice_targets(30, (10, 14))
    near = near_l3_slices(targets, slice_thickness_mm=2.0, distance_mm=5.0)  # 2 slices each way
    assert np.flatnonzero(near).tolist() == [8, 9, 15, 16]
    assert not near_l3_slices(slice_targets(30, None), 2.0, 40.0).any()
    assert near_l3_slices(slice_targets(30, (0, 3)), 1.0, 2.0).tolist()[:7] == [False] * 4 + [True] * 2 + [False]


def test_near_share_draws_that_share_of_the_negatives_from_l3_neighbours():
    targets = [slice_targets(200, (90, 99)), slice_targets(100, None)]
    near = [near_l3_slices(t, 1.0, 20.0) for t in targets]  # 40 near slices of 290 negatives
    near_of = np.concatenate(near)
    offsets = np.array([0, 200])

    def near_count(plan):
        negative = plan.label == 0
        return int(near_of[offsets[plan.case_index[negative]] + plan.slice_index[negative]].sum())

    plain = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.2)
    emphasised = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.2, near=near, near_share=0.5)
    assert len(emphasised) == len(plain) and emphasised.num_l3 == plain.num_l3 == 10
    assert near_count(emphasised) == 29  # half of round(0.2 * 290) = 58
    assert near_count(plain) < 20  # about 8 expected
    # more asked for than there are: all of them, the rest from the others
    capped = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.5, near=near, near_share=1.0)
    assert near_count(capped) == 40 and len(capped) - capped.num_l3 == 145
    with pytest.raises(ValueError, match="near masks"):
        plan_epoch(targets, np.random.default_rng(0), near_share=0.5)


def test_edge_cuts_are_drawn_last_at_the_rate_and_leave_the_samples_alone():
    targets = [slice_targets(300, (140, 160)), slice_targets(200, None)]
    plain = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.5, oversampling_rate=0.1)
    cut = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.5, oversampling_rate=0.1, edge_cut_rate=0.3)
    assert plain.cut_side is None  # rate 0: the epoch the paper's recipe draws, unchanged
    for name in ("case_index", "slice_index", "label", "augment"):
        assert np.array_equal(getattr(plain, name), getattr(cut, name))
    assert set(np.unique(cut.cut_side)) == {-1, 0, 1}
    assert 0.25 < np.mean(cut.cut_side != 0) < 0.35
    assert ((cut.cut_fraction >= 0) & (cut.cut_fraction < 1)).all()
    with pytest.raises(ValueError, match="edge_cut_rate"):
        plan_epoch(targets, np.random.default_rng(0), edge_cut_rate=1.5)
    with pytest.raises(ValueError, match="edge_cut_rate"):
        TrainingBudget(edge_cut_rate=-0.1)


def test_offset_shifts_are_drawn_last_within_the_jitter_and_leave_the_samples_alone():
    targets = [slice_targets(300, (140, 160)), slice_targets(200, None)]
    cut = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.5, oversampling_rate=0.1, edge_cut_rate=0.3)
    jittered = plan_epoch(targets, np.random.default_rng(0), negatives_fraction=0.5, oversampling_rate=0.1, edge_cut_rate=0.3,
                          offset_jitter_mm=8.0)
    assert cut.offset_shift_mm is None  # no jitter: every sample at the preprocessing's offset
    for name in ("case_index", "slice_index", "label", "augment", "cut_side", "cut_fraction"):
        assert np.array_equal(getattr(cut, name), getattr(jittered, name))
    shifts = jittered.offset_shift_mm
    assert len(shifts) == len(jittered) and np.abs(shifts).max() <= 8.0 and shifts.min() < -6.0 and shifts.max() > 6.0
    with pytest.raises(ValueError, match="offset_jitter_mm"):
        plan_epoch(targets, np.random.default_rng(0), offset_jitter_mm=-1.0)
    neighbors = PreprocessingConfig(input_size=16, channel_mode="neighbors", neighbor_offset_mm=40.0)
    assert TrainingBudget(preprocessing=neighbors, neighbor_offset_jitter_mm=10.0).neighbor_offset_jitter_mm == 10.0
    with pytest.raises(ValueError, match="smaller than the neighbour offset"):
        TrainingBudget(preprocessing=neighbors, neighbor_offset_jitter_mm=40.0)
    with pytest.raises(ValueError, match="2.5D channels"):
        TrainingBudget(preprocessing=PreprocessingConfig(input_size=16, channel_mode="repeat"), neighbor_offset_jitter_mm=5.0)


def test_an_offset_shift_moves_the_neighbours_and_the_edge_cut_with_them(tmp_path):
    slices = np.arange(40, dtype=np.float16)[:, None, None] * np.ones((1, 16, 16), np.float16)  # slice k holds the value k
    np.save(tmp_path / "slices.npy", slices)
    case = PreparedCase("c", "c", "c.nii.gz", 40, 2.0, 1, None, tmp_path / "slices.npy")
    config = PreprocessingConfig(input_size=16, channel_mode="neighbors", neighbor_offset_mm=10.0)  # 5 slices away
    one = lambda values: np.array(values, dtype=np.int64)
    # slice 20: no shift; +4 mm (7 slices away); -6 mm (2 slices away); +4 mm and cut above at 0.99 (the shifted neighbour is the edge)
    plan = EpochPlan(one([0] * 4), one([20] * 4), one([0] * 4), np.zeros(4, bool), one([0, 0, 0, 1]), np.array([0.0, 0.0, 0.0, 0.99]),
                     np.array([0.0, 4.0, -6.0, 4.0]))
    channels = [EpochDataset([case], plan, config)[i][0][:, 0, 0].tolist() for i in range(4)]
    assert channels == [[15, 20, 25], [13, 20, 27], [18, 20, 22], [13, 20, 27]]
    repeat = EpochDataset([case], plan, PreprocessingConfig(input_size=16, channel_mode="repeat"))
    assert repeat[1][0][:, 0, 0].tolist() == [20, 20, 20]  # one slice repeated: nothing to shift


def test_an_edge_cut_serves_the_slice_as_a_scan_ending_there_would(tmp_path):
    assert cut_scan_range(100, 50, -1, 3) == (47, 99) and cut_scan_range(100, 50, 1, 0) == (0, 50)
    assert cut_scan_range(100, 1, -1, 5) == (0, 99) and cut_scan_range(100, 50, 0, 5) == (0, 99)
    slices = np.arange(40, dtype=np.float16)[:, None, None] * np.ones((1, 16, 16), np.float16)  # slice k holds the value k
    np.save(tmp_path / "slices.npy", slices)
    case = PreparedCase("c", "c", "c.nii.gz", 40, 2.0, 1, None, tmp_path / "slices.npy")
    config = PreprocessingConfig(input_size=16, channel_mode="neighbors", neighbor_offset_mm=10.0)  # 5 slices away
    one = lambda values: np.array(values, dtype=np.int64)
    # sample: slice 20; whole scan, then cut below at fractions 0 (the slice is the edge) and 0.5 (3 slices below),
    # then cut above at 0.99 (the neighbour itself is the last slice)
    plan = EpochPlan(one([0] * 4), one([20] * 4), one([0] * 4), np.zeros(4, bool), one([0, -1, -1, 1]), np.array([0.0, 0.0, 0.5, 0.99]))
    dataset = EpochDataset([case], plan, config)
    channels = [dataset[i][0][:, 0, 0].tolist() for i in range(4)]
    assert channels == [[15, 20, 25], [20, 20, 25], [17, 20, 25], [15, 20, 25]]
    repeat = EpochDataset([case], plan, PreprocessingConfig(input_size=16, channel_mode="repeat"))
    assert repeat[1][0][:, 0, 0].tolist() == [20, 20, 20]


# --- augmentation -------------------------------------------------------------------------------------

def test_augmentation_is_random_per_sample_seeded_and_keeps_shape():
    images = torch.rand(6, 3, 32, 32)
    out = augment_batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(out, augment_batch(images, torch.Generator().manual_seed(0)))
    matrices = random_affine_matrices(200, torch.Generator().manual_seed(1))
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    changed = [not torch.allclose(m, identity) for m in matrices]
    assert 150 < sum(changed) < 200  # each transform is on with probability 1/2: ~1/16 untouched
    assert (matrices[:, 0, 0] * matrices[:, 1, 1] - matrices[:, 0, 1] * matrices[:, 1, 0] < 0).any()  # some reflected
    off = augment_batch(images, torch.Generator().manual_seed(0), AugmentationRanges(probability=0.0))
    assert torch.allclose(off, images, atol=1e-5)
    flip_only = AugmentationRanges(rotation_deg=0, translation_fraction=0, shear_deg=0, probability=1.0)
    assert torch.allclose(augment_batch(images, torch.Generator(), flip_only), images.flip(-1), atol=1e-5)


def test_zoom_scales_the_image_about_its_centre():
    zoom_only = AugmentationRanges(rotation_deg=0, translation_fraction=0, shear_deg=0, reflection=False, probability=1.0, scale_fraction=0.5)
    matrices = random_affine_matrices(100, torch.Generator().manual_seed(3), zoom_only)
    factors = 1.0 / matrices[:, 0, 0]  # output-to-input matrix: diagonal 1 / zoom
    assert torch.allclose(matrices[:, 1, 1], matrices[:, 0, 0]) and torch.all(matrices[:, :, 2] == 0)
    assert 0.5 <= float(factors.min()) < 0.7 and 1.3 < float(factors.max()) <= 1.5
    assert torch.allclose(random_affine_matrices(5, torch.Generator().manual_seed(3))[:, :, :2].det().abs(), torch.ones(5), atol=1e-5)  # paper: no zoom


def test_intensity_augmentation_stays_in_range_is_seeded_and_each_change_works():
    images = torch.rand(16, 3, 32, 32) * 0.6 + 0.2
    out = augment_intensity(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert torch.equal(out, augment_intensity(images, torch.Generator().manual_seed(0)))
    changed = (out - images).abs().flatten(1).max(1).values > 1e-4
    assert 10 <= int(changed.sum()) <= 16  # four changes, each on with probability 1/2
    off = IntensityRanges(probability=0.0)
    assert torch.allclose(augment_intensity(images, torch.Generator(), off), images)
    blur = IntensityRanges(gamma=(1.0, 1.0), contrast=0.0, brightness=0.0, noise_sd=0.0, probability=1.0)
    blurred = augment_intensity(images, torch.Generator().manual_seed(1), blur)
    assert float(blurred.diff(dim=-1).abs().mean()) < 0.6 * float(images.diff(dim=-1).abs().mean())
    assert torch.allclose(blurred.mean(), images.mean(), atol=0.01)
    noise_only = IntensityRanges(gamma=(1.0, 1.0), contrast=0.0, brightness=0.0, blur_sigma_px=(1e-6, 1e-6), noise_sd=0.1, probability=1.0)
    noisy = augment_intensity(torch.full((4, 3, 32, 32), 0.5), torch.Generator().manual_seed(2), noise_only)
    assert 0.0 < float(noisy.std()) < 0.1


def test_paper_augments_only_oversampled_copies_and_all_slices_augments_every_sample():
    images = torch.rand(8, 3, 32, 32)
    oversampled = torch.tensor([True, False] * 4)
    paper = augment_samples(images, oversampled, "paper", torch.Generator().manual_seed(0))
    assert torch.equal(paper[~oversampled], images[~oversampled])
    assert not torch.allclose(paper[oversampled], images[oversampled])
    every = augment_samples(images, oversampled, "all-slices", torch.Generator().manual_seed(0))
    assert all(not torch.allclose(every[i], images[i]) for i in range(8))
    assert torch.equal(images, images.clone())  # inputs untouched
    with pytest.raises(ValueError, match="augmentation"):
        augment_samples(images, oversampled, "mixup", torch.Generator())
    with pytest.raises(ValueError, match="augmentation"):
        TrainingBudget(augmentation="mixup")


# --- design parameters ----------------------------------------------------------------------------------

def test_search_space_matches_the_parameters_and_the_control_fixes_two():
    names = [d.name for d in search_space()]
    assert names == list(DesignParameters().to_dict())
    assert len(search_space(control=True)) == 5
    params = DesignParameters(3e-4, 2e-3, 48, 2, "global-l2norm", 0.2, 0.7)
    assert params_from_point(point_from_params(params)) == params
    control = params_from_point(point_from_params(params, control=True), control=True)
    assert (control.oversampling_rate, control.class_weight) == (0.0, 0.5)
    with pytest.raises(ValueError, match="minibatch_size"):
        DesignParameters(minibatch_size=20)
    with pytest.raises(ValueError, match="class_weight"):
        DesignParameters(class_weight=1.5)


def test_class_weight_definition_and_its_effect_on_the_loss():
    assert class_loss_weights(0.5).tolist() == [1.0, 1.0]
    weights = class_loss_weights(0.8)
    assert weights[1] / weights[0] == pytest.approx(0.8 / 0.2)
    assert class_loss_weights(0.0).tolist() == pytest.approx([2 * (1 - CLASS_WEIGHT_CLAMP[0]), 2 * CLASS_WEIGHT_CLAMP[0]])
    assert class_loss_weights(1.0).tolist() == pytest.approx([2 * (1 - CLASS_WEIGHT_CLAMP[1]), 2 * CLASS_WEIGHT_CLAMP[1]])
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.5], [0.0, 0.2]])
    labels = torch.tensor([0, 1, 1, 0])
    assert weighted_loss(logits, labels, class_loss_weights(0.5)) == pytest.approx(float(F.cross_entropy(logits, labels)))
    per = F.cross_entropy(logits, labels, reduction="none")
    expected = float((per[[0, 3]].sum() * 0.4 + per[[1, 2]].sum() * 1.6) / 4)
    assert float(weighted_loss(logits, labels, class_loss_weights(0.8))) == pytest.approx(expected)


def test_clipping_methods_differ_on_a_crafted_case():
    def grads(method):
        a = torch.nn.Parameter(torch.zeros(2))
        b = torch.nn.Parameter(torch.zeros(2))
        a.grad = torch.tensor([3.0, 4.0])  # norm 5
        b.grad = torch.tensor([0.6, 0.8])  # norm 1
        clip_gradients([a, b], 2.0, method)
        return a.grad, b.grad

    a, b = grads("l2norm")
    assert torch.allclose(a, torch.tensor([1.2, 1.6])) and torch.allclose(b, torch.tensor([0.6, 0.8]))  # b untouched
    a, b = grads("global-l2norm")
    scale = 2.0 / np.sqrt(26.0)
    assert torch.allclose(a, torch.tensor([3.0, 4.0]) * scale) and torch.allclose(b, torch.tensor([0.6, 0.8]) * scale)
    with pytest.raises(ValueError):
        grads("l1norm")


def test_each_design_parameter_reaches_the_training_loop(prepared, monkeypatch):
    calls = []
    real_clip = train_module.clip_gradients

    def recording_clip(parameters, threshold, method):
        parameters = list(parameters)
        calls.append((threshold, method, float(torch.sqrt(sum((p.grad.float() ** 2).sum() for p in parameters if p.grad is not None)))))
        real_clip(parameters, threshold, method)

    monkeypatch.setattr(train_module, "clip_gradients", recording_clip)
    params = DesignParameters(l2_regularisation=3e-3, learning_rate=5e-3, minibatch_size=16, gradient_threshold=2,
                              gradient_threshold_method="global-l2norm", oversampling_rate=0.2, class_weight=0.7)
    result = train_model(prepared[:3], params, tiny_budget(epochs=2))
    settings = result.settings
    assert settings["minibatch_size"] == 16
    assert settings["learning_rate"] == 5e-3 and settings["weight_decay"] == 3e-3 and settings["momentum"] == 0.9
    assert settings["class_loss_weights"] == pytest.approx([0.6, 1.4])
    assert calls and all(c[:2] == (2, "global-l2norm") for c in calls)
    n = sum(c.num_slices for c in prepared[:3])
    for epoch in result.epochs:  # oversampling: round(0.2 x N) augmented L3 copies per epoch
        assert epoch.augmented == round(0.2 * n) and epoch.samples == n + epoch.augmented
    assert len(calls) == 2 * -(-result.epochs[0].samples // 16)  # one clipping per minibatch of 16


def test_class_weight_changes_the_training_loss(prepared):
    losses = {w: train_model(prepared[:3], DesignParameters(learning_rate=1e-3, class_weight=w), tiny_budget()).epoch_losses[0] for w in (0.2, 0.8)}
    assert losses[0.2] != pytest.approx(losses[0.8], rel=1e-3)


def test_training_is_deterministic_from_a_seed(prepared):
    params = DesignParameters(learning_rate=3e-3, minibatch_size=16, oversampling_rate=0.1)
    first = train_model(prepared[:3], params, tiny_budget(epochs=2))
    second = train_model(prepared[:3], params, tiny_budget(epochs=2))
    other = train_model(prepared[:3], params, tiny_budget(epochs=2, seed=4))
    assert first.epoch_losses == second.epoch_losses
    assert first.epoch_losses != other.epoch_losses
    state_a, state_b = first.model.network.state_dict(), second.model.network.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_validation_scoring_from_the_cache_agrees_with_inference(prepared, case_folder):
    from l3locator.reading import load_ct

    model = train_model(prepared[:2], DesignParameters(learning_rate=1e-2), tiny_budget()).model
    case = prepared[4]
    cached = case_probabilities(model, case)
    direct = score_volume(model, load_ct(case.image), device="cpu")
    assert np.abs(cached - direct).max() < 1e-2


def test_a_diverged_network_scores_as_a_failed_trial_not_an_error(prepared):
    """Validation goes through the engine but keeps a diverged trial's NaN: F1 0, the search goes on."""
    from l3locator.modelfile import L3Model

    model = L3Model.new("resnet18", TINY)
    with torch.no_grad():
        model.network.fc.bias.fill_(float("nan"))
    assert np.isnan(case_probabilities(model, prepared[0])).all()
    counts = train_module.validation_counts(model, prepared[:2])
    assert counts.tp == counts.fp == 0 and counts.fn == sum(int(c.targets().sum()) for c in prepared[:2]) and counts.f1 == 0.0


def test_training_precision_is_its_own_question():
    """Training autocasts (fp16 needs a GPU's gradient scaler); scoring's "mixed" is no training precision."""
    cpu = torch.device("cpu")
    assert train_module.resolve_training_precision("auto", cpu) in ("bf16", "fp32")
    assert train_module.resolve_training_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="CUDA"):
        train_module.resolve_training_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision"):
        TrainingBudget(precision="mixed")


def test_data_summary_counts(prepared):
    summary = data_summary(prepared)
    assert summary == {"cases": 5, "patients": 5, "cases_with_l3": 5, "cases_without_l3": 0,
                       "slices": 120, "l3_slices": 25, "other_slices": 95}


def test_folder_summary_counts_from_the_labels_and_lists_every_problem(case_folder, tmp_path):
    clean = folder_summary(case_folder)
    assert {k: clean[k] for k in data_summary([])} == data_summary(prepare_cases(discover_cases(case_folder).cases, TINY, tmp_path / "cache"))
    assert clean["unlabelled_files"] == [] and clean["problems"] == []

    write_json_case(tmp_path, "a", num_slices=24, l3_range=(8, 12))
    volume = synthetic_volume(20, (5, 9))
    write_nifti(volume, tmp_path / "b.nii.gz")
    no_l3 = np.zeros(volume.voxels.shape, np.uint8)
    no_l3[:, 10:20, 10:20] = 21  # a vertebra map with L2 only
    nib.save(nib.Nifti1Image(no_l3.T, volume.ijk_to_ras), tmp_path / "b_vertebrae.nii.gz")
    write_nifti(volume, tmp_path / "unlabelled.nii.gz")
    (tmp_path / "orphan.l3.json").write_text((tmp_path / "a.l3.json").read_text().replace('"a.nii.gz"', '"gone.nii.gz"'))
    write_nifti(volume, tmp_path / "broken.nii.gz")
    (tmp_path / "broken.l3.json").write_text("{not json")

    summary = folder_summary(tmp_path)
    assert {k: summary[k] for k in ("cases", "patients", "cases_with_l3", "cases_without_l3", "slices", "l3_slices", "other_slices")} == {
        "cases": 2, "patients": 2, "cases_with_l3": 1, "cases_without_l3": 1, "slices": 44, "l3_slices": 5, "other_slices": 39}
    assert summary["unlabelled_files"] == ["broken.nii.gz", "unlabelled.nii.gz"]
    problems = summary["problems"]
    assert len(problems) == 2, problems
    assert "broken.l3.json" in problems[0] and "not a readable label file" in problems[0]
    assert "1 label(s)" in problems[1] and "orphan.l3.json" in problems[1]
    with pytest.raises(LabelError, match="broken.l3.json"):  # training itself stops at the first bad label
        discover_cases(tmp_path)


def test_what_keeps_a_folder_from_being_trained_on():
    summary = data_summary([])
    assert training_blockers(summary, folds=0) == [
        "0 patient(s): training needs at least 2", "no case has a labelled L3: nothing to learn"]
    enough = {**summary, "patients": 3, "l3_slices": 9}
    assert training_blockers(enough, folds=0) == [] and training_blockers(enough, folds=3) == []
    assert training_blockers(enough, folds=5) == ["3 patient(s): training needs at least 2 (and at least as many as --folds 5)"]


def test_budget_round_trips_and_the_small_configuration():
    budget = TrainingBudget.small(seed=5)
    assert TrainingBudget.from_dict(json.loads(json.dumps(budget.to_dict()))) == budget
    assert (budget.arch, budget.preprocessing.input_size, budget.device) == ("resnet18", 64, "cpu")
    with pytest.raises(ValueError, match="unknown training budget"):
        TrainingBudget.from_dict({"epochz": 3})


# --- progress lines ---------------------------------------------------------------------------------------

def test_progress_json_lines_keep_the_contract():
    out, err = io.StringIO(), io.StringIO()
    reporter = ProgressReporter("json", total_epochs=4, text_stream=err, json_stream=out)
    reporter.start()
    reporter.emit("trial_start", trial=1, trials=2, epochs=2)
    reporter.epoch_finished()
    reporter.emit("epoch", trial=1, trials=2, epoch=1, epochs=2, loss=0.5)
    reporter.emit("done", model="m.pt", report=None, loss=float("nan"))
    lines = out.getvalue().splitlines()
    assert all(line.startswith(PREFIX + " ") for line in lines)
    records = [json.loads(line[len(PREFIX) + 1 :]) for line in lines]
    assert [r["stage"] for r in records] == ["trial_start", "epoch", "done"]
    assert all(set(KEYS) <= set(r) for r in records)
    assert records[1]["eta_s"] is not None and records[0]["eta_s"] is None
    assert records[2]["model"] == "m.pt" and records[2]["report"] is None and records[2]["loss"] is None
    assert "trial 1/2" in err.getvalue() and "epoch 1/2" in err.getvalue()
    text_only = io.StringIO()
    ProgressReporter("text", json_stream=text_only, text_stream=io.StringIO()).emit("epoch", epoch=1)
    assert text_only.getvalue() == ""
