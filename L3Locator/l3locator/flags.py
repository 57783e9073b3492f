"""What each result flag means, in words for the person reviewing the answer.

Flags are set by the locate rule (:mod:`l3locator.locate`), the field-of-view check
(:func:`l3locator.pipeline.flag_small_field_of_view`), the blank-slice check
(:func:`l3locator.pipeline.flag_blank_slices`) and the level check
(:func:`l3locator.pipeline.check_level`); results, JSON and CSV carry their names, and the shells
(the Slicer module's results line, the CLI's text line) show these sentences beside them.
"""

from __future__ import annotations

#: flag name -> one sentence for the reviewer.
FLAG_MEANINGS: dict[str, str] = {
    "no_l3_found": "No run of slices looked enough like L3: the scan may not contain L3.",
    "anatomy_rejected": "A candidate was dropped because its middle slice shows lungs.",
    "multiple_candidates": "The network also saw L3 somewhere else in the scan.",
    "l3_at_scan_edge": "The L3 run touches the first or last slice: L3 may be cut off.",
    "implausible_extent": "The L3 run is shorter than 10 mm or longer than 60 mm.",
    "low_confidence": "Low confidence: check the slice by eye.",
    "level_disagreement": ("Counting vertebrae from the sacrum and the lowest ribs (or from the one of them "
                           "in the scan) puts L3 on another level than the network's strongest candidate; "
                           "a count from one of them alone can itself be a level off: check the level by eye."),
    "small_field_of_view": ("The slices are under 200 mm across (a crop?): the model knows whole-body fields of view, "
                            "so neither its answer nor finding no L3 is reliable here."),
    "blank_slices": ("Some slices hold no image (one value throughout: padding or missing data); L3 may lie "
                     "there unseen, or be cut off beside them (the warnings name the slices)."),
    "level_count_answer": ("The answer is the L3 of that vertebra count, where the network also saw L3; "
                           "check the level."),
}


def explain(flags: list[str]) -> list[str]:
    """The sentence of each flag in ``flags``, in order (an unknown flag: its name)."""
    return [FLAG_MEANINGS.get(flag, flag) for flag in flags]
