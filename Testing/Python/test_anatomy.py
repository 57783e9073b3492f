"""The no-lungs check on candidate L3 slices (l3locator.anatomy) and its use by find_l3."""

import numpy as np
import torch

from l3locator.anatomy import MAX_L3_AIR_FRACTION, air_fraction_in_body, has_lungs
from l3locator.locate import LocateRule
from l3locator.modelfile import L3Model
from l3locator.pipeline import find_l3
from l3locator.preprocessing import PreprocessingConfig
from l3locator.volume import CTVolume


def ellipse(shape, centre, radii):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 < 1


def body_slice(lungs: bool, gas_bubbles: int = 0, shape=(96, 96)) -> np.ndarray:
    """Air around a soft-tissue trunk with a vertebra (and a separate arm); two lungs or a few gas
    bubbles inside."""
    hu = np.full(shape, -1000, dtype=np.int16)
    hu[ellipse(shape, (48, 44), (34, 38))] = 40
    hu[ellipse(shape, (70, 44), (5, 6))] = 700  # bone: a CT without it is refused before L3 is searched
    hu[ellipse(shape, (48, 90), (10, 5))] = 40  # an arm beside the body: not part of the trunk
    if lungs:
        hu[ellipse(shape, (44, 28), (20, 13))] = -850
        hu[ellipse(shape, (44, 60), (20, 13))] = -850
    for n in range(gas_bubbles):
        hu[ellipse(shape, (40 + 6 * (n % 3), 34 + 8 * (n // 3)), (2, 2))] = -950
    return hu


def test_air_fraction_counts_lungs_and_gas_inside_the_trunk_only():
    chest, abdomen = body_slice(lungs=True), body_slice(lungs=False, gas_bubbles=6)
    assert air_fraction_in_body(chest) > 0.25 and has_lungs(chest)
    assert 0.0 < air_fraction_in_body(abdomen) < 0.05 and not has_lungs(abdomen)
    assert air_fraction_in_body(body_slice(lungs=False)) == 0.0  # air outside the body is not counted
    assert air_fraction_in_body(np.full((32, 32), -1000)) == 0.0
    assert 0.05 < MAX_L3_AIR_FRACTION < 0.25


def test_find_l3_rejects_an_answer_on_a_slice_with_lungs_unless_told_not_to():
    torch.manual_seed(0)
    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    model.locate_rule = LocateRule(threshold=0.0, min_mass_mm=0.0)  # any run: every slice is a candidate
    chest = CTVolume(np.repeat(body_slice(lungs=True)[None], 12, axis=0), np.diag([1.0, 1.0, 3.0, 1.0]), source="chest")
    checked = find_l3(chest, model, exhaustive=True)
    assert not checked.l3_found and {"no_l3_found", "anatomy_rejected"} <= set(checked.flags)
    assert find_l3(chest, model).flags == checked.flags  # fast path: same answer
    assert find_l3(chest, model, exhaustive=True, anatomy_check=False).l3_found
    abdomen = CTVolume(np.repeat(body_slice(lungs=False, gas_bubbles=4)[None], 12, axis=0), np.diag([1.0, 1.0, 3.0, 1.0]), source="abdomen")
    assert find_l3(abdomen, model, exhaustive=True).l3_found
