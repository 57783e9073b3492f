"""The model card ``l3locator train`` writes beside its final model (``final_model.md``).

Markdown for people, made from the final model's provenance alone (so it says nothing the
model file does not record): the network and input, the model it started from (the *parent*, by
file name and SHA-256) or "random weights", how it was trained (quick or optimised, design
parameters, epochs), the data (folder, cases, patients, slices), the cross-validation by patient,
and for an adapted model the comparison with its parent on the same held-out cases and whether it
is recommended, then every warning of the run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_atomically
from .adapt import comparison_text

MODEL_CARD_FILE = "final_model.md"


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def model_card_text(provenance: dict[str, Any], *, model_file: str, warnings: Sequence[str] = ()) -> str:
    """The card's text (see the module docstring)."""
    budget, data, metrics = provenance["budget"], provenance["data"], provenance["metrics"]
    preprocessing = budget["preprocessing"]
    parent = provenance.get("parent_model")
    channels = ("2.5D neighbours ±" + _number(preprocessing["neighbor_offset_mm"], 0) + " mm"
                if preprocessing["channel_mode"] == "neighbors" else "one slice repeated in 3 channels")
    mode = ("quick: fixed design parameters, no optimisation" if provenance.get("mode") == "quick"
            else f"best of {provenance.get('trials')} Bayesian-optimisation trial(s) (trial {provenance.get('best_trial')})")
    lines = [
        f"# Model card: `{model_file}`",
        "",
        "**Not for clinical use.** Check every answer (QC picture, probability plot) before relying on it.",
        "",
        f"- Network: {budget['arch']}, input {preprocessing['input_size']} px, {channels}; created {provenance['created']} "
        f"by l3locator {provenance['l3locator_version']}.",
        ("- Started from: **" + parent["name"] + "** (SHA-256 `" + parent["sha256"] + "`): its weights, preprocessing and locate rule"
         + (f"; first {budget['freeze_layers']} ResNet stage(s) frozen" if budget.get("freeze_layers") else "")
         if parent else "- Started from: random weights."),
        f"- Training: {mode}; {budget['epochs']} epoch(s); design parameters "
        + ", ".join(f"{k} {v}" for k, v in provenance["design_parameters"].items()) + ".",
        f"- Data: {data['cases']} case(s) of {data['patients']} patient(s) in `{data.get('folder')}`: "
        f"{data['slices']} slices, {data['l3_slices']} L3 slices.",
    ]
    cv = metrics.get("cross_validation")
    if cv:
        errors = cv["error_slices"]
        lines.append(f"- Cross-validation by patient ({provenance.get('cv_folds')} folds, each case scored by a network that never saw it): "
                     f"L3 slice error {_number(errors['mean'])} ± {_number(errors['sd'])} slices (median {_number(errors['median'])}), "
                     f"within 2 slices {_number(cv['within_2'])}, {cv['failures']} case(s) without an answer.")
    else:
        lines.append("- Not cross-validated (fewer than 2 folds): its accuracy is unknown.")
    comparison = metrics.get("comparison_with_parent")
    if comparison:
        lines.append(f"- Against its parent, {comparison_text(comparison)}.")
    if parent:
        verdict = ("**Recommended** over its parent." if metrics.get("recommended")
                   else f"**Not recommended**: keep using {parent['name']} (see the comparison and warnings).")
        lines.append(f"- {verdict}")
    if warnings:
        lines += ["", "## Warnings", "", *(f"- {warning}" for warning in warnings)]
    return "\n".join(lines) + "\n"


def write_model_card(path: str | os.PathLike, provenance: dict[str, Any], *, model_file: str, warnings: Sequence[str] = ()) -> Path:
    """Write the card atomically; returns its path."""
    text = model_card_text(provenance, model_file=model_file, warnings=warnings)
    return write_atomically(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
