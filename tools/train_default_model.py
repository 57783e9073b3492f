"""Train the shipped default model (or an ablation variant) with the project's training code.

    python -m l3locator phantoms /data/phantoms_train --count 80 --first-seed 0 --size 256
    python tools/train_default_model.py /data/phantoms_train --output L3Locator/l3locator/models/default.pt

The Bayesian optimisation over the paper's seven design parameters is not affordable on the
2-core CPU this model was trained on (each trial is a full training run), so this recipe trains
once with fixed design parameters inside the paper's ranges, chosen by hand from short trial runs.
Everything it used is recorded in the model file's provenance and the model card beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from l3locator.atomic import write_atomically
from l3locator.choices import AUGMENTATIONS, STRETCH_MODES
from l3locator.preprocessing import PreprocessingConfig
from l3locator.training.cache import prepare_cases
from l3locator.training.dataset import data_summary, discover_cases
from l3locator.training.design import HAND_PICKED as DESIGN
from l3locator.training.train import TrainingBudget, train_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="training folder (phantoms written by `l3locator phantoms`)")
    parser.add_argument("--output", required=True, help="model file to write")
    parser.add_argument("--arch", default="resnet18", choices=("resnet18", "resnet50"))
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--channel-mode", default="neighbors", choices=("repeat", "neighbors"))
    parser.add_argument("--neighbor-offset-mm", type=float, default=8.0)
    parser.add_argument("--stretch", default="percentile", choices=STRETCH_MODES,
                        help="percentile: the paper's per-slice histogram stretch; window: the HU clip window maps to [0, 1]")
    parser.add_argument("--stretch-min-white-hu", type=float, default=None,
                        help="percentile stretch: its white point is at least this HU (default: the paper's stretch)")
    parser.add_argument("--spine-field-mm", type=float, default=None,
                        help="the network sees a square this wide (mm) around the spine instead of the whole slice")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-slices-per-epoch", type=int, default=4000)
    parser.add_argument("--negatives-per-epoch", type=float, default=0.2)
    parser.add_argument("--augmentation", default="paper", choices=AUGMENTATIONS,
                        help="paper: augment the oversampled L3 copies only; all-slices: every sample (see l3locator.training.train)")
    parser.add_argument("--class-weight", type=float, default=DESIGN.class_weight,
                        help=f"the paper's class weight w in [0, 1] (loss weights 2(1-w), 2w; default {DESIGN.class_weight})")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--cache-dir", default=None, help="preprocessed-slice cache (default DATA_DIR/.l3locator-cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=DESIGN.learning_rate,
                        help=f"the paper's initial learning rate (default {DESIGN.learning_rate})")
    parser.add_argument("--init-model", default=None,
                        help="model file to continue from (same architecture and preprocessing), e.g. to finish a run "
                        "at a lower learning rate")
    parser.add_argument("--checkpoint", default=None,
                        help="file the network's weights are saved to after every epoch (a long run's insurance)")
    parser.add_argument("--near-l3-share", type=float, default=0.0,
                        help="share of each epoch's non-L3 slices drawn from L3's neighbours (0: like any other)")
    parser.add_argument("--near-l3-mm", type=float, default=40.0,
                        help="non-L3 slices within this distance (mm) of L3 are its neighbours")
    parser.add_argument("--edge-cut-rate", type=float, default=0.0,
                        help="share of the samples seen as if their scan ended between the slice and its 2.5D neighbour (0: none)")
    parser.add_argument("--neighbor-offset-jitter-mm", type=float, default=0.0,
                        help="shift each sample's 2.5D neighbour offset by up to this many mm either way (0: none; inference keeps "
                        "--neighbor-offset-mm)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    design = replace(DESIGN, class_weight=args.class_weight, learning_rate=args.learning_rate)
    preprocessing = PreprocessingConfig(input_size=args.input_size, channel_mode=args.channel_mode, neighbor_offset_mm=args.neighbor_offset_mm,
                                        spine_field_mm=args.spine_field_mm, stretch=args.stretch,
                                        stretch_min_white_hu=args.stretch_min_white_hu)
    budget = TrainingBudget(
        epochs=args.epochs, arch=args.arch, preprocessing=preprocessing, negatives_per_epoch=args.negatives_per_epoch,
        max_slices_per_epoch=args.max_slices_per_epoch, device=None, seed=args.seed, bn_statistics_slices=4000,
        augmentation=args.augmentation, init_model=str(Path(args.init_model).resolve()) if args.init_model else None,
        near_l3_mm=args.near_l3_mm, near_l3_share=args.near_l3_share, edge_cut_rate=args.edge_cut_rate,
        neighbor_offset_jitter_mm=args.neighbor_offset_jitter_mm,
    )
    cache_dir = args.cache_dir or str(Path(args.data_dir) / ".l3locator-cache")
    cases = prepare_cases(discover_cases(args.data_dir).cases, preprocessing, cache_dir,
                          progress=lambda done, total, name: print(f"prepared {done}/{total} {name}", file=sys.stderr, flush=True))
    summary = data_summary(cases)
    print(json.dumps(summary), file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = train_model(cases, design, budget, on_epoch=lambda epoch, loss: print(
        f"epoch {epoch}/{args.epochs} loss {loss:.4f} [{time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True),
        checkpoint=_checkpoint_writer(args.checkpoint) if args.checkpoint else None)
    model = result.model
    model.provenance = {
        "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": "tools/train_default_model.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": {**summary, "source": "synthetic phantoms (l3locator.phantoms), seeds "
                 f"{min(c.name for c in cases)}..{max(c.name for c in cases)}"},
        "design_parameters": design.to_dict(),
        "budget": {"epochs": args.epochs, "arch": args.arch, "max_slices_per_epoch": args.max_slices_per_epoch,
                   "negatives_per_epoch": args.negatives_per_epoch, "seed": args.seed,
                   "augmentation": args.augmentation, "init_model": args.init_model,
                   "near_l3_share": args.near_l3_share, "near_l3_mm": args.near_l3_mm, "edge_cut_rate": args.edge_cut_rate,
                   "neighbor_offset_jitter_mm": args.neighbor_offset_jitter_mm},
        "training_settings": result.settings,
        "epoch_losses": [round(loss, 5) for loss in result.epoch_losses],
        "training_slices_per_second": round(result.slices_per_second, 1),
        "training_seconds": round(result.seconds, 1),
        "optimisation": "none (fixed design parameters; Bayesian optimisation not affordable on a 2-core CPU)",
    }
    path = model.save(args.output, half=True)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) after {result.seconds:.0f} s", file=sys.stderr)
    return 0


def _checkpoint_writer(path: str) -> Callable[[int, torch.nn.Module], None]:
    """Save ``{"epoch", "state_dict"}`` to ``path`` atomically (one file, replaced every epoch)."""

    def save(epoch: int, network: torch.nn.Module) -> None:
        state = {"epoch": epoch, "state_dict": network.state_dict()}
        write_atomically(path, lambda tmp: torch.save(state, tmp))

    return save


if __name__ == "__main__":
    sys.exit(main())
