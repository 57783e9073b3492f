"""Level classes (issue 16): a network trained to name every slice's vertebral level, read on real CT.

    python bench/level_classes.py train DATA --cache-dir CACHE --output levels.pt [--epochs 6 --learning-rate 0.001 ...]
    python bench/level_classes.py evaluate levels.pt [--phantoms 12] [--output bench/results/level_classes.md]

The shipped classifier learns L3 / not-L3 only, and on the real ACRIN abdomen it scores L2 and L4
nearly as high as L3; a linear probe of its features does not order real vertebrae
(``results/level_probe.md``). The issue's other route to level identity is a learned level
estimate. Here the shipped network is fine-tuned with a seven-way head, one class per level
(``LEVEL_CLASSES``: above L1, L1 ... L5, below L5; each slice's majority vertebra label in the
phantoms' vertebra maps, VerSe ids, slices without a label take the nearest labelled slice's
class), so it must tell every lumbar level from its neighbours, not only L3 from the rest.

Two answers are read from its per-slice posteriors: ``p(L3)`` through the shipped locate rule (the
same as the binary model's), and an **ordered decoding**: the one assignment of classes to slices
that never goes back up the spine (above L1 -> L1 -> ... -> below L5 from head to feet, any class
may be empty) with the highest summed log posterior (dynamic programming), whose L3 slices give
the answer (their middle). The ordering lets the slices the network is sure of (ribs, sacrum)
place the uncertain lumbar ones: a learned count.

The experiment's network is saved as a plain state dict (not an L3Locator model file); the
preprocessing is the shipped model's (128 px, 2.5D ±40 mm, percentile stretch), so the slice
cache of a training run with the shipped model is reused.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from accuracy import COUNTED_LEVELS, SHARED_DATA, real_cases, vertebra_templates
from l3locator.atomic import write_atomically
from l3locator.engine import ScanSlices
from l3locator.labels import l3_range_from_vertebra_map
from l3locator.locate import locate_l3
from l3locator.modelfile import load_model
from l3locator.phantoms import generate_phantom
from l3locator.pipeline import find_l3
from l3locator.reading import load_ct
from l3locator.training.augment import augment_samples
from l3locator.training.bn_statistics import estimate_population_statistics
from l3locator.training.cache import prepare_cases
from l3locator.training.clipping import clip_gradients
from l3locator.training.dataset import discover_cases
from l3locator.preprocessing import assemble_inputs
from l3locator.volume import CTVolume

LEVEL_CLASSES = ("above L1", "L1", "L2", "L3", "L4", "L5", "below L5")
L3_CLASS = LEVEL_CLASSES.index("L3")
#: VerSe ids: 8-19 T1-T12, 20-24 L1-L5, 25 L6, 26 sacrum.
FIRST_LUMBAR_ID, LAST_LUMBAR_ID = 20, 24
VALIDATION_SEED = 500_000  # the card's validation phantoms (disjoint from training and from the benchmark)
PHANTOM_MIX = (("abdomen", 2.5), ("abdomen", 5.0), ("whole_body", 3.0), ("abdomen", 1.25), ("chest", 2.5), ("abdomen", 3.0))


def class_of_vertebra(label: int) -> int:
    """Level class of a VerSe vertebra id (> 0)."""
    if label < FIRST_LUMBAR_ID:
        return 0
    if label > LAST_LUMBAR_ID:
        return len(LEVEL_CLASSES) - 1
    return label - FIRST_LUMBAR_ID + 1


def slice_classes(vertebrae: np.ndarray) -> np.ndarray:
    """Level class per slice (int64) of a vertebra map ``[slice, row, column]`` (VerSe ids, 0 = none):
    the majority vertebra of each slice; slices without one take the nearest labelled slice's
    class (all "above L1" when the map is empty)."""
    classes = np.full(vertebrae.shape[0], -1, dtype=np.int64)
    for k in range(vertebrae.shape[0]):
        labels = vertebrae[k][vertebrae[k] > 0]
        if labels.size:
            values, counts = np.unique(labels, return_counts=True)
            classes[k] = class_of_vertebra(int(values[np.argmax(counts)]))
    labelled = np.flatnonzero(classes >= 0)
    if labelled.size == 0:
        return np.zeros(vertebrae.shape[0], dtype=np.int64)
    nearest = labelled[np.abs(np.arange(len(classes))[:, None] - labelled[None, :]).argmin(axis=1)]
    return classes[nearest]


def ordered_decoding(log_posteriors: np.ndarray, superior_step: int) -> np.ndarray:
    """Class per slice, never going back up the spine, with the highest summed log posterior.

    ``log_posteriors``: ``[slices, classes]`` in slice-index order; ``superior_step``: +1 when
    higher indices lie toward the head, -1 otherwise. Classes are ordered head to feet.
    """
    scores = log_posteriors[::-1] if superior_step > 0 else log_posteriors  # head first
    n, k = scores.shape
    best = np.empty((n, k))
    came_from = np.zeros((n, k), dtype=np.int64)
    best[0] = scores[0]
    for i in range(1, n):
        running = np.maximum.accumulate(best[i - 1])  # best over classes <= c
        came_from[i] = [int(np.argmax(best[i - 1][: c + 1])) for c in range(k)]
        best[i] = running + scores[i]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(best[-1]))
    for i in range(n - 1, 0, -1):
        path[i - 1] = came_from[i][path[i]]
    return path[::-1] if superior_step > 0 else path


def decoded_l3(classes: np.ndarray) -> tuple[float | None, tuple[int, int] | None]:
    """Middle and range of the decoded L3 slices (None when the decoding has none)."""
    l3 = np.flatnonzero(classes == L3_CLASS)
    if l3.size == 0:
        return None, None
    return (l3.min() + l3.max()) / 2.0, (int(l3.min()), int(l3.max()))


def lumbar_span_middle(classes: np.ndarray) -> float | None:
    """Middle of the decoded lumbar spine (first L1 to last L5 slice, both needed): where L3's middle
    lies if the five lumbar levels were equally tall, a count that needs only the span's two ends."""
    if not ((classes == 1).any() and (classes == 5).any()):
        return None
    lumbar = np.flatnonzero((classes >= 1) & (classes <= 5))
    return (lumbar.min() + lumbar.max()) / 2.0


def level_network(shipped_path: str | None, state: str | None = None) -> tuple[torch.nn.Module, object]:
    """A copy of the shipped model's network with a seven-way head (weights from ``state`` when
    given), and the shipped model itself (unchanged)."""
    model = load_model(shipped_path)
    network = copy.deepcopy(model.network).float().requires_grad_(True)
    network.fc = torch.nn.Linear(network.fc.in_features, len(LEVEL_CLASSES))
    if state:
        network.load_state_dict(torch.load(state, map_location="cpu"))
    return network, model


# --- training ------------------------------------------------------------------------------------

def train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    network, model = level_network(args.init_from)
    if args.resume:
        network.load_state_dict(torch.load(args.resume, map_location="cpu"))
    config = model.preprocessing
    sources = discover_cases(args.data).cases
    cases = prepare_cases(sources, config, args.cache_dir)
    classes = []
    for source in sources:
        vertebrae = load_ct(source.label)
        classes.append(slice_classes(np.moveaxis(np.asarray(vertebrae.voxels), 2 - vertebrae.axial_axis, 0)))
    print(f"{len(cases)} cases, {sum(len(c) for c in classes)} slices; per class "
          f"{np.bincount(np.concatenate(classes), minlength=len(LEVEL_CLASSES)).tolist()}", flush=True)
    case_of = np.concatenate([np.full(len(c), i) for i, c in enumerate(classes)])
    slice_of = np.concatenate([np.arange(len(c)) for c in classes])
    class_of = np.concatenate(classes)
    weight = np.where((class_of >= 1) & (class_of <= 5), 1.0, args.other_weight)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    stacks = [torch.from_numpy(case.slices()) for case in cases]
    network = network.to(memory_format=torch.channels_last)
    optimiser = torch.optim.SGD(network.parameters(), lr=args.learning_rate, momentum=0.9, weight_decay=1e-4)
    schedule = [args.learning_rate] * args.epochs + [args.learning_rate / 2] * args.late_epochs
    for epoch, learning_rate in enumerate(schedule, start=1):
        if epoch <= args.skip_epochs:
            continue
        for group in optimiser.param_groups:
            group["lr"] = learning_rate
        started = time.perf_counter()
        drawn = rng.choice(len(class_of), size=min(args.slices_per_epoch, len(class_of)), replace=False, p=weight / weight.sum())
        network.train()
        loss_sum, seen = 0.0, 0
        for start in range(0, len(drawn) - 1, args.batch):
            batch = drawn[start : start + args.batch]
            inputs = torch.cat([
                assemble_inputs(stacks[case_of[i]], [int(slice_of[i])], config, cases[case_of[i]].slice_thickness_mm,
                                cases[case_of[i]].superior_step) for i in batch
            ]).float()
            inputs = augment_samples(inputs, torch.ones(len(batch), dtype=torch.bool), "all-slices", generator)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
            labels = torch.from_numpy(class_of[batch])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = network(inputs)
            loss = F.cross_entropy(logits.float(), labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(network.parameters(), 5.0, "global-l2norm")
            optimiser.step()
            loss_sum += float(loss.detach()) * len(batch)
            seen += len(batch)
        torch.save(network.state_dict(), f"{args.output}.epoch{epoch}")
        print(f"epoch {epoch}/{len(schedule)} lr {learning_rate:g}: loss {loss_sum / seen:.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    estimate_population_statistics(network, cases, config, torch.device("cpu"), rng, max_slices=4000, batch_size=64)
    network = network.to(memory_format=torch.contiguous_format)
    torch.save(network.state_dict(), args.output)
    print(f"saved {args.output}", flush=True)
    return 0


# --- evaluation ----------------------------------------------------------------------------------

def posteriors(network: torch.nn.Module, config, volume: CTVolume, batch: int = 32) -> np.ndarray:
    """Softmax over the level classes per slice, float64 ``[slices, classes]`` (float32 scoring)."""
    slices = ScanSlices.of_volume(volume, config)
    rows = []
    with torch.no_grad():
        for start in range(0, len(slices), batch):
            logits = network(slices.inputs(np.arange(start, min(start + batch, len(slices)))).float())
            rows.append(torch.softmax(logits.float(), dim=1).double().numpy())
    return np.concatenate(rows)


def answers(p: np.ndarray, volume: CTVolume, rule) -> dict:
    """The two answers from the posteriors: p(L3) through the locate rule, and the ordered decoding."""
    found = locate_l3(p[:, L3_CLASS], volume.slice_thickness, rule)
    classes = ordered_decoding(np.log(np.clip(p, 1e-9, 1.0)), volume.superior_step)
    middle, decoded_range = decoded_l3(classes)
    return {"rule": found.slice_index if found.l3_found else None, "rule_flags": found.flags,
            "decoded": middle, "decoded_range": decoded_range, "span": lumbar_span_middle(classes)}


def error_text(answer: float | None, truth: tuple[int, int] | None) -> str:
    if truth is None:
        return "none (right)" if answer is None else f"{answer:g} (false)"
    if answer is None:
        return "missed"
    return f"{answer:g} ({abs(answer - (truth[0] + truth[1]) / 2):g} off)"


def non_l3_share(p_l3: np.ndarray, truth: tuple[int, int] | None) -> str:
    outside = np.ones(len(p_l3), dtype=bool)
    if truth is not None:
        outside[truth[0] : truth[1] + 1] = False
    return f"{int((p_l3[outside] >= 0.5).sum())}/{int(outside.sum())} ({(p_l3[outside] >= 0.5).mean():.0%})"


def evaluate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    network, model = level_network(args.init_from, args.state)
    network.eval()
    config, rule = model.preprocessing, model.locate_rule
    lines = ["# Level classes: a seven-way level head on the shipped network (issue 16)", "",
             f"`python bench/level_classes.py evaluate {args.state}` — how it was trained: the section below. "
             f"Classes {', '.join(LEVEL_CLASSES)}. Answers: `p(L3)` through the shipped locate rule "
             f"(threshold {rule.threshold:g}, no lung check or count), and the ordered decoding (module docstring).", "",
             "## Real scans", "", "| scan | L3 truth | p(L3) rule | its flags | ordered decoding | decoded L3 slices | lumbar span middle | non-L3 p(L3) >= 0.5 |",
             "|---|---|---|---|---|---|---|---|"]
    level_tables = []
    for case in real_cases():
        p = posteriors(network, config, case.volume)
        found = answers(p, case.volume, rule)
        lines.append(f"| {case.name} | {case.truth_range or 'none'} | {error_text(found['rule'], case.truth_range)} | "
                     f"{', '.join(found['rule_flags']) or '-'} | {error_text(found['decoded'], case.truth_range)} | "
                     f"{found['decoded_range'] or '-'} | {error_text(found['span'], case.truth_range)} | "
                     f"{non_l3_share(p[:, L3_CLASS], case.truth_range)} |")
        for name, levels in COUNTED_LEVELS.items():
            if case.name == name:
                table = [f"### {name}: mean posterior per counted level (rows) and class (columns)", "",
                         "| counted level | slices | " + " | ".join(LEVEL_CLASSES) + " |", "|---|---|" + "---|" * len(LEVEL_CLASSES)]
                for level, (first, last) in sorted(levels.items(), key=lambda item: item[1]):
                    means = p[first : last + 1].mean(axis=0)
                    table.append(f"| {level} | {first}–{last} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
                decoded = ordered_decoding(np.log(np.clip(p, 1e-9, 1.0)), case.volume.superior_step)
                table += ["", "Decoded class per slice (index: class), from the lowest slice: " +
                          " ".join(f"{k}:{LEVEL_CLASSES[c]}" for k, c in enumerate(decoded) if k == 0 or c != decoded[k - 1]), ""]
                level_tables += table
    templates, template_text = vertebra_templates(None)
    errors_shipped, errors_rule, errors_decoded, errors_span, phantom_rows = [], [], [], [], []
    for n in range(args.phantoms):
        extent, thickness = PHANTOM_MIX[n % len(PHANTOM_MIX)]
        phantom = generate_phantom(VALIDATION_SEED + n, shape_ij=(256, 256), slice_thickness_mm=thickness, extent=extent,
                                   vertebra_templates=templates)
        truth = l3_range_from_vertebra_map(phantom.vertebra_labels)
        p = posteriors(network, config, phantom.volume)
        found = answers(p, phantom.volume, rule)
        shipped = find_l3(phantom.volume, model, exhaustive=True, anatomy_check=False, level_check=False)
        found["shipped"] = shipped.l3_slice_index if shipped.l3_found else None
        for key, errors in (("shipped", errors_shipped), ("rule", errors_rule), ("decoded", errors_decoded), ("span", errors_span)):
            if truth is not None:
                errors.append(np.inf if found[key] is None else abs(found[key] - (truth[0] + truth[1]) / 2))
        phantom_rows.append(f"| {VALIDATION_SEED + n} {extent} {thickness:g} mm | {truth or 'none'} | {error_text(found['shipped'], truth)} | "
                            f"{error_text(found['rule'], truth)} | "
                            f"{error_text(found['decoded'], truth)} | {error_text(found['span'], truth)} | {non_l3_share(p[:, L3_CLASS], truth)} |")

    def summary(errors: list[float]) -> str:
        found = [e for e in errors if np.isfinite(e)]
        return f"{np.mean(found):.2f} slices mean over {len(found)} found, {len(errors) - len(found)} missed" if found else "none found"

    lines += ["", *level_tables, f"## Validation phantoms ({args.phantoms}, seeds {VALIDATION_SEED:,}+; vertebrae: {template_text})", "",
              f"The shipped binary model (same rule, no checks): {summary(errors_shipped)}. Level head: p(L3) rule: {summary(errors_rule)}; ordered decoding: {summary(errors_decoded)}; lumbar span middle: {summary(errors_span)}.", "",
              "| phantom | L3 truth | shipped binary model | p(L3) rule | ordered decoding | lumbar span middle | non-L3 p(L3) >= 0.5 |",
              "|---|---|---|---|---|---|---|", *phantom_rows, ""]
    output = Path(args.output)
    kept = ""
    if output.is_file() and "\n## Training\n" in output.read_text():
        kept = output.read_text().split("\n## Training\n", 1)[1]
    text = "\n".join(lines) + "\n## Training\n" + (kept or "\n(how the evaluated network was trained: write it here)\n")
    write_atomically(output, lambda tmp: Path(tmp).write_text(text))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init-from", help="the L3Locator model whose network and preprocessing to start from (default: shipped)")
    parser.add_argument("--threads", type=int, default=2)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="fine-tune the network with the seven-way head on phantoms with vertebra maps")
    fit.add_argument("data", help="training folder: <case>.nii.gz beside <case>_vertebrae.nii.gz")
    fit.add_argument("--cache-dir", required=True)
    fit.add_argument("--output", required=True, help="state dict written here (and OUTPUT.epochN after each epoch)")
    fit.add_argument("--epochs", type=int, default=6, help="epochs at the learning rate")
    fit.add_argument("--late-epochs", type=int, default=3, help="then epochs at half of it")
    fit.add_argument("--learning-rate", type=float, default=1e-3)
    fit.add_argument("--slices-per-epoch", type=int, default=3500)
    fit.add_argument("--other-weight", type=float, default=0.25, help="draw weight of slices outside L1-L5 (lumbar slices: 1)")
    fit.add_argument("--batch", type=int, default=32)
    fit.add_argument("--seed", type=int, default=7)
    fit.add_argument("--resume", help="state dict to resume from (with --skip-epochs)")
    fit.add_argument("--skip-epochs", type=int, default=0)
    read = commands.add_parser("evaluate", help="the real scans in ../shared and validation phantoms")
    read.add_argument("state", help="state dict written by train")
    read.add_argument("--phantoms", type=int, default=12)
    read.add_argument("--output", default=str(Path(__file__).parent / "results" / "level_classes.md"))
    args = parser.parse_args(argv)
    if args.command == "evaluate" and not SHARED_DATA.is_dir():
        print(f"note: {SHARED_DATA} not found; real scans skipped", file=sys.stderr)
    return train(args) if args.command == "train" else evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
