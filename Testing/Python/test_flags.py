"""Every flag a result can carry has a sentence for the reviewer (l3locator.flags), and the shells show it."""

from __future__ import annotations

import re
from pathlib import Path

import l3locator
from l3locator.flags import FLAG_MEANINGS, explain

SOURCES = Path(l3locator.__file__).resolve().parent


def flags_set_in_the_code() -> set[str]:
    """Flag names the core appends to results (``flags.append("...")``, ``["no_l3_found", ...]``)."""
    names = set()
    for path in SOURCES.rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'flags\.append\("([a-z0-9_]+)"\)', text))
        names |= set(re.findall(r'\["(no_l3_found)"', text))
    return names


def test_every_flag_the_core_sets_has_a_meaning():
    found = flags_set_in_the_code()
    assert {"no_l3_found", "low_confidence", "level_count_answer"} <= found  # the scan itself works
    assert found <= set(FLAG_MEANINGS), found - set(FLAG_MEANINGS)


def test_explain_keeps_the_order_and_names_an_unknown_flag():
    assert explain(["low_confidence", "something_new"]) == [FLAG_MEANINGS["low_confidence"], "something_new"]
    assert explain([]) == []


def test_the_cli_prints_the_meaning_under_the_result(capsys):
    from l3locator.cli import print_result
    from l3locator.pipeline import L3Result

    result = L3Result(input="scan.nii.gz", l3_found=False, l3_slice_index=None, l3_slice_range=None, l3_position_ras=None,
                      confidence=0.0, flags=["no_l3_found"], slice_probabilities=[0.0], model="m", seconds=0.1, num_slices=1)
    print_result(result, {}, as_json=False)
    assert f"  {FLAG_MEANINGS['no_l3_found']}" in capsys.readouterr().out.splitlines()
