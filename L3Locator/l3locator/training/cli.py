"""The ``train`` and ``evaluate`` subcommands of ``l3locator`` (added by :func:`add_subcommands`).

    l3locator train DATA_DIR --trials N --epochs E --folds K --output-dir DIR [--resume] [--control]
        [--seed S] [--arch resnet50|resnet18] [--input-size 224] [--channel-mode repeat|neighbors]
        [--device cpu|cuda] [--negatives-per-epoch F] [--progress text|json] [--small] ...
        [--init-model default|FILE [--freeze-layers N]] [--quick]
    l3locator evaluate DATA_DIR --model FILE [--folds K] [--output-dir DIR] [--device D] [--progress text|json]

``train`` runs :func:`~.workflow.run_training` (optimisation → cross-validation with the best
parameters → final model on all cases); ``--init-model`` starts every network from a model
file (:mod:`.parent`, with the fine-tuning defaults of :mod:`.adapt`) and ``--quick`` skips the
optimisation. ``evaluate`` without ``--folds`` scores every case with
the given model (no training); with ``--folds K`` (K ≥ 2) it re-trains K networks by
cross-validation using the design parameters and budget recorded in the model file (an
adapted model's networks start from its parent again, and the parent is scored beside them).

``--small`` selects the small configuration (:meth:`~.train.TrainingBudget.small`: ResNet18,
64 px, 2 epochs, a quarter of the non-L3 slices, at most 600 slices per epoch, CPU) for any
option not given explicitly. Each handler is set as ``run`` and returns the exit code; the
optimisation and evaluation code is imported only when a handler runs, so adding these
subcommands does not slow down ``l3locator find``. ``--help`` shows :data:`TRAIN_DESCRIPTION`
and :data:`EVALUATE_DESCRIPTION` (plain text for users).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..choices import ARCHITECTURES, AUGMENTATIONS, CACHE_FOLDER, CHANNEL_MODES, RESNET_STAGE_NAMES, SHIPPED_MODEL, TRAINING_PRECISIONS
from .progress import MODES, ProgressReporter

if TYPE_CHECKING:
    from .train import TrainingBudget

TRAIN_DESCRIPTION = """\
Train an L3 model on a folder of annotated CT scans.

A case is a CT (NIfTI, NRRD or a DICOM folder) with its label beside it: CASE.l3.json
or a vertebra label map CASE_vertebrae.nii.gz. The run has three steps:
  1. optimisation: --trials networks with different settings, each trained on part of the
     cases and scored on held-out ones (best_model.pt, trials.jsonl);
  2. cross-validation with the best settings (--folds networks, each scoring cases it never
     saw): cv_report.json and cv_report.png, the accuracy to expect on new scans;
  3. the final model, trained on all cases: final_model.pt (the model to use).
If cross-validation finds no L3 in some labelled case, the run says so (WARNING lines) and the
final model is reported as not validated. --resume continues an interrupted run.
--small is a quick CPU setting for trying things out (ResNet18, 64 px, 2 epochs); without
it the network is the full-size one (ResNet50, 224 px, 10 epochs; a GPU is advisable).

Adapting a model to your scans: --init-model default (the shipped model) or a model file
starts every network from that model's weights, with its network, preprocessing and locate
rule (so --arch, --input-size and --channel-mode must be left out or match), 8 epochs at a
lower learning rate, batch-norm statistics re-estimated on your cases; --freeze-layers N keeps
the first N ResNet stages as they are. --quick skips the optimisation (one training with fixed
settings: minutes on a CPU). The cross-validation then also scores the starting model on the
same held-out cases: the report and final_model.md say whether the adapted model is better;
if it is not, keep using the one you started from.

examples: l3locator train data/ --output-dir run/ --small --trials 3 --folds 2
          l3locator train my_cases/ --output-dir adapted/ --init-model default --quick"""

EVALUATE_DESCRIPTION = """\
Measure a model's accuracy on a folder of annotated CT scans (the same layout as for
train): the L3 slice error per case, its mean, spread and share within 1 and 2 slices, and
the slice-level F1, written to cv_report.json and cv_report.png in --output-dir.

Without --folds, the given model scores every case. These figures estimate accuracy on new
scans only if the model never saw these cases: when the model file lists the cases it was
trained on and they are among those evaluated, the report says "in-sample".
With --folds K, K new networks are trained with the settings recorded in the model file,
each scoring the cases it did not see (cross-validation).

example: l3locator evaluate data/ --model run/final_model.pt --output-dir report/"""

#: Optimisation trials of ``train`` unless ``--trials`` (or ``--quick``) is given.
DEFAULT_TRIALS = 30
#: Defaults of ``train`` (full size, the paper's setting); ``--small`` swaps in the small ones.
FULL_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "arch": "resnet50", "input_size": 224, "negatives_per_epoch": 1.0,
    "max_slices_per_epoch": None, "device": None,
}


def _small_defaults() -> dict[str, Any]:
    from .train import TrainingBudget

    small = TrainingBudget.small()
    return {
        "epochs": small.epochs, "arch": small.arch, "input_size": small.preprocessing.input_size,
        "negatives_per_epoch": small.negatives_per_epoch, "max_slices_per_epoch": small.max_slices_per_epoch,
        "device": small.device,
    }


def budget_from_args(args: argparse.Namespace) -> TrainingBudget:
    """The training budget the ``train`` options describe (unset options from the defaults).

    With ``--init-model`` the network and preprocessing are the model's (an explicit option
    that differs is refused with one line) and, unless ``--small``, the sampling defaults are
    the fine-tuning ones (:data:`~.adapt.FINE_TUNING_BUDGET`).

    Raises:
        InputError: conflicting or invalid options.
        ModelFileError: the ``--init-model`` file cannot be loaded.
    """
    from ..preprocessing import PreprocessingConfig
    from .adapt import FINE_TUNING_BUDGET, conflicting_options, fine_tuning_budget
    from .parent import load_parent, resolve_init_model
    from .train import TrainingBudget

    defaults = _small_defaults() if args.small else FULL_DEFAULTS

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return defaults[name] if value is None else value

    if args.init_model is None:
        if args.freeze_layers:
            raise InputError("--freeze-layers needs --init-model: layers of a network trained from random weights would stay random")
        try:
            preprocessing = PreprocessingConfig(input_size=pick("input_size"), channel_mode=args.channel_mode or "repeat")
            return TrainingBudget(
                epochs=pick("epochs"), arch=pick("arch"), preprocessing=preprocessing,
                negatives_per_epoch=pick("negatives_per_epoch"), max_slices_per_epoch=pick("max_slices_per_epoch"),
                device=pick("device"), precision=args.precision, seed=args.seed, augmentation=args.augmentation or "paper",
            )
        except ValueError as exc:
            raise InputError(str(exc)) from exc

    parent = load_parent(resolve_init_model(args.init_model))
    conflicts = conflicting_options(parent.model, arch=args.arch, input_size=args.input_size, channel_mode=args.channel_mode)
    if conflicts:
        raise InputError(f"--init-model {args.init_model} conflicts with " + ", ".join(conflicts)
                         + ": a model adapted from another keeps its network and preprocessing; leave these options out")
    if not args.small:
        defaults = {**defaults, **{k: v for k, v in FINE_TUNING_BUDGET.items() if k in defaults}}
    try:
        augmentation = {} if args.augmentation is None else {"augmentation": args.augmentation}
        return fine_tuning_budget(
            parent, epochs=pick("epochs"), negatives_per_epoch=pick("negatives_per_epoch"), max_slices_per_epoch=pick("max_slices_per_epoch"),
            device=pick("device"), precision=args.precision, seed=args.seed, freeze_layers=args.freeze_layers, **augmentation,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def run_train(args: argparse.Namespace) -> int:
    from .adapt import comparison_text
    from .workflow import run_training

    if args.quick and args.trials is not None:
        raise InputError("--trials sets how many optimisation trials to run and --quick runs none: leave one of them out")
    budget = budget_from_args(args)
    progress = ProgressReporter(args.progress)
    outputs = run_training(
        args.data_dir, args.output_dir, trials=DEFAULT_TRIALS if args.trials is None else args.trials, quick=args.quick,
        folds=args.folds, budget=budget, control=args.control, resume=args.resume, validation_fraction=args.validation_fraction,
        cache_dir=args.cache_dir, progress=progress,
    )
    if outputs.optimisation is not None:
        best = outputs.optimisation.best
        progress.note(f"best trial {best.trial} of {len(outputs.optimisation.records)}: validation F1 {best.f1:.3f}")
        progress.note(f"best trial's model: {outputs.best_model}; trial log: {outputs.trials_log}")
    if outputs.comparison is not None:
        progress.note(f"adapted model vs its parent, {comparison_text(outputs.comparison)}")
    if outputs.report_json:
        progress.note(f"cross-validation report: {outputs.report_json} and {outputs.report_png}")
    for warning in outputs.warnings:
        progress.note(f"WARNING: {warning}")
    if outputs.validated:
        progress.note(f"final model: {outputs.final_model}")
    elif outputs.report_json:
        progress.note(f"final model, NOT VALIDATED (cross-validation found no L3 in some labelled cases): {outputs.final_model}")
    else:
        progress.note(f"final model, not cross-validated (--folds < 2; its accuracy is unknown): {outputs.final_model}")
    if outputs.parent is not None and not outputs.recommended:
        progress.note(f"the adapted model is NOT RECOMMENDED: keep using {outputs.parent['name']}")
    elif outputs.parent is not None:
        progress.note(f"the adapted model is recommended over its parent {outputs.parent['name']}")
    progress.note(f"model card: {outputs.model_card}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..modelfile import load_model
    from .cache import prepare_cases
    from .dataset import discover_cases
    from .design import DesignParameters
    from .evaluate import cross_validate, evaluate_model, write_report
    from .parent import load_parent
    from .train import TrainingBudget

    model = load_model(args.model)
    progress = ProgressReporter(args.progress)
    output_dir = Path(args.output_dir)
    if args.folds:
        if args.folds < 2:
            raise InputError("--folds needs at least 2 (leave it out to evaluate the model as it is)")
        try:
            params = DesignParameters.from_dict(model.provenance["design_parameters"])
            budget = TrainingBudget.from_dict(model.provenance["budget"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{args.model} does not record its design parameters and budget, so it cannot be cross-validated ({exc})") from exc
        if args.device:
            budget = TrainingBudget.from_dict({**budget.to_dict(), "device": args.device})
        discovery = discover_cases(args.data_dir)
        cases = prepare_cases(discovery.cases, budget.preprocessing, args.cache_dir or output_dir / CACHE_FOLDER)
        patients = len({c.patient for c in cases})
        if patients < args.folds:
            raise InputError(f"{args.folds} folds need at least {args.folds} patients; {args.data_dir} has {patients}")
        progress.plan(args.folds * budget.epochs)
        progress.start()
        parent = load_parent(budget.init_model) if budget.init_model else None
        report = cross_validate(cases, params, budget, args.folds, progress=progress, parent=parent)
    else:
        discovery = discover_cases(args.data_dir)

        def on_case(done: int, total: int, row: dict[str, Any]) -> None:
            error = "no truth" if row["error_slices"] is None else f"error {row['error_slices']:g} slices"
            progress.note(f"[{done}/{total}] {row['case']}: predicted {row['predicted_index']}, truth {row['true_index']}, {error}")

        report = evaluate_model(model, discovery.cases, device=args.device, on_case=on_case)
    report["data_folder"] = str(Path(args.data_dir).resolve())
    json_path, png_path = write_report(report, output_dir)
    summary = report["summary"]
    errors = summary["error_slices"]
    mean = "n/a" if errors["mean"] is None else f"{errors['mean']:.2f}"
    sd = "n/a" if errors["sd"] is None else f"{errors['sd']:.2f}"
    within = "n/a" if summary["within_2"] is None else f"{summary['within_2']:.2f}"
    for warning in report["warnings"]:
        progress.note(f"WARNING: {warning}")
    kind = {True: "IN-SAMPLE ", False: "", None: ""}[report["in_sample"]]
    progress.emit("done", model=str(args.model), report=str(json_path), warnings=report["warnings"], in_sample=report["in_sample"],
                  message=f"{summary['cases']} case(s), {kind}error {mean} ± {sd} slices, within 2 slices {within}, slice F1 {summary['slice_f1']:.3f}")
    if report.get("comparison"):
        from .adapt import comparison_text

        progress.note(f"re-adapted networks vs their parent, {comparison_text(report['comparison'])}")
    progress.note(f"report: {json_path} and {png_path}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``evaluate`` to the ``l3locator`` command's subparsers."""
    train = subparsers.add_parser("train", help="train a model on an annotated folder (Bayesian optimisation, cross-validation)",
                                  description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("data_dir", metavar="DATA_DIR", help="folder of annotated cases (CT + .l3.json or _vertebrae.nii.gz)")
    train.add_argument("--trials", type=int, help=f"optimisation trials in total (default {DEFAULT_TRIALS})")
    train.add_argument("--epochs", type=int, help=f"epochs per training run (default {FULL_DEFAULTS['epochs']}; fewer with --init-model, see above)")
    train.add_argument("--folds", type=int, default=5, help="cross-validation folds with the best parameters; 0 or 1: none (default 5)")
    train.add_argument("--output-dir", required=True, help="where the trial log, models and reports go")
    train.add_argument("--resume", action="store_true", help="continue the run in --output-dir up to --trials trials")
    train.add_argument("--control", action="store_true", help="the paper's control: optimise the 5 hyperparameters only (no oversampling, equal class weights)")
    train.add_argument("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    train.add_argument("--arch", choices=ARCHITECTURES, help="network (default resnet50)")
    train.add_argument("--input-size", type=int, help="network input size in pixels (default 224)")
    train.add_argument("--channel-mode", choices=CHANNEL_MODES, help="repeat: one slice in 3 channels (paper, the default); neighbors: 2.5D")
    train.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    train.add_argument("--negatives-per-epoch", type=float, help="fraction of non-L3 slices drawn per epoch (default 1 = all)")
    train.add_argument("--max-slices-per-epoch", type=int, help="cap on slices per epoch before oversampling (default: none)")
    train.add_argument("--augmentation", choices=AUGMENTATIONS,
                       help="paper (the default; with --init-model: the model's own): augment only the oversampled L3 copies; "
                            "all-slices: every sample, plus zoom and intensity changes")
    train.add_argument("--precision", choices=TRAINING_PRECISIONS, default="auto", help="mixed precision (default auto: bf16/fp16 where fast)")
    train.add_argument("--validation-fraction", type=float, default=0.2, help="share of patients held out to score trials (default 0.2)")
    train.add_argument("--cache-dir", help=f"preprocessed-slice cache (default DIR/{CACHE_FOLDER})")
    train.add_argument("--small", action="store_true",
                       help="quick CPU setting for tests and demos: ResNet18, 64 px, 2 epochs, a quarter of the non-L3 slices, at most 600 slices per epoch")
    train.add_argument("--init-model", metavar="default|FILE",
                       help=f"start from this model's weights, network, preprocessing and locate rule ('{SHIPPED_MODEL}': the shipped model) "
                            "and compare the result with it on the held-out folds")
    train.add_argument("--freeze-layers", type=int, default=0, choices=range(len(RESNET_STAGE_NAMES) + 1), metavar="N",
                       help=f"with --init-model: keep the first N ResNet stages ({', '.join(RESNET_STAGE_NAMES)}) as they are, "
                            f"0-{len(RESNET_STAGE_NAMES)} (default 0)")
    train.add_argument("--quick", action="store_true",
                       help="no Bayesian optimisation: one training with fixed settings (fine-tuning ones with --init-model)")
    train.add_argument("--progress", choices=MODES, default="text", help="json: also print 'L3LOCATOR_PROGRESS {...}' lines on stdout")
    train.set_defaults(run=run_train)

    evaluate = subparsers.add_parser("evaluate", help="accuracy of a model on an annotated folder (report JSON + PNG)",
                                     description=EVALUATE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("data_dir", metavar="DATA_DIR", help="folder of annotated cases")
    evaluate.add_argument("--model", required=True, help="model file to evaluate")
    evaluate.add_argument("--folds", type=int, default=0, help="K >= 2: cross-validate by re-training with the model's recorded parameters")
    evaluate.add_argument("--output-dir", default=".", help="where cv_report.json and cv_report.png go (default: current folder)")
    evaluate.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    evaluate.add_argument("--cache-dir", help=f"preprocessed-slice cache for --folds (default DIR/{CACHE_FOLDER})")
    evaluate.add_argument("--progress", choices=MODES, default="text", help="json: also print 'L3LOCATOR_PROGRESS {...}' lines on stdout")
    evaluate.set_defaults(run=run_evaluate)
