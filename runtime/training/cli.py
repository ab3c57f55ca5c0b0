"""`python -m llm_runtime.training --model DIR --data PATH [...]` (and `python -m llm_runtime train`).

Parse, build TrainOptions, call the trainer; errors become messages here and only here
(tracebacks when LLM_DEBUG=1).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from llm_runtime.training.data.formats import FORMAT_NAMES
from llm_runtime.training.errors import TrainingError, is_out_of_memory, out_of_memory
from llm_runtime.training.options import METHODS, MODES, OPTIMIZERS, TrainOptions, TrainPaths

DEBUG_ENV = "LLM_DEBUG"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("must be in [0, 1)")
    return value


def _modules(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def build_parser(prog: str = "python -m llm_runtime.training") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="LoRA/QLoRA fine-tuning with auto-learning"
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All trainer options; shared with `python -m llm_runtime train`."""
    main = parser.add_argument_group("data and model")
    main.add_argument(
        "--model", type=Path, default=Path("/model"), help="model folder (default /model)"
    )
    main.add_argument("--data", help="file, folder, 'glob', comma list, or hub name:split")
    main.add_argument(
        "--dataset-format",
        help="override detection: " + ", ".join(FORMAT_NAMES),
    )
    main.add_argument("--max-examples", type=_positive_int)
    main.add_argument("--validation-split", type=_fraction, default=0.1)
    main.add_argument(
        "--method", choices=METHODS, help="default: moe-lora for MoE models, else lora"
    )
    main.add_argument(
        "--use-8bit", action="store_true", help="load the model in 8-bit (CUDA + bitsandbytes)"
    )
    hyper = parser.add_argument_group("parameters (automatic unless given)")
    hyper.add_argument("--epochs", type=float)
    hyper.add_argument("--max-steps", type=_positive_int)
    hyper.add_argument(
        "--batch-size", type=_positive_int, help="per step; with --circular the largest it grows to"
    )
    hyper.add_argument(
        "--gradient-accumulation-steps", "--gradient-accumulation", type=_positive_int
    )
    hyper.add_argument("--learning-rate", type=float)
    hyper.add_argument("--lora-r", type=_positive_int)
    hyper.add_argument("--lora-alpha", type=_positive_int, help="default 2*r")
    hyper.add_argument("--lora-dropout", type=float, default=0.05)
    hyper.add_argument(
        "--target-modules", type=_modules, help="comma list (default: the family's, or all-linear)"
    )
    hyper.add_argument("--max-seq-length", type=_positive_int)
    hyper.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw_torch")
    hyper.add_argument(
        "--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None
    )
    hyper.add_argument("--eval-steps", type=_positive_int)
    hyper.add_argument("--seed", type=int, default=42)
    hyper.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"), default="auto")
    modes = parser.add_argument_group("modes and auto-learning")
    modes.add_argument("--mode", choices=MODES, default="medium")
    modes.add_argument(
        "--circular",
        action="store_true",
        help="many cycles over a small dataset, the batch size doubling in stages",
    )
    modes.add_argument("--max-circular-epochs", type=_positive_int, default=100)
    modes.add_argument(
        "--force-epochs", action="store_true", help="ignore every auto-stop condition"
    )
    modes.add_argument("--patience", type=_positive_int)
    modes.add_argument("--overfitting-threshold", type=float)
    modes.add_argument("--min-evaluations", type=_positive_int, default=5)
    moe = parser.add_argument_group("Mixture-of-Experts")
    moe.add_argument("--train-router", action="store_true", help="also train the router (moe-lora)")
    moe.add_argument("--router-aux-loss-coef", type=float, help="load-balancing loss weight")
    out = parser.add_argument_group("outputs")
    out.add_argument(
        "--output-dir", type=Path, help="root of lora/ checkpoints/ logs/ (default: model's parent)"
    )
    out.add_argument(
        "--lora-dir", "--output", type=Path, help="adapter folder (default OUTPUT/lora)"
    )
    out.add_argument("--checkpoints-dir", type=Path)
    out.add_argument(
        "--logs-dir", type=Path, help="TensorBoard folder (default OUTPUT/logs/training)"
    )
    out.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    out.add_argument("--resume-from", type=Path, help="continue from this checkpoint folder")
    out.add_argument(
        "--from-adapter",
        type=Path,
        help="start from this LoRA adapter's weights (continue training it)",
    )
    board = parser.add_argument_group("TensorBoard")
    board.add_argument("--no-tensorboard", action="store_true")
    board.add_argument("--tensorboard-port", type=int, default=6006)
    board.add_argument("--tensorboard-host", default="127.0.0.1", help="0.0.0.0 inside a container")
    board.add_argument(
        "--tensorboard-only",
        nargs="?",
        type=int,
        const=-1,
        metavar="PORT",
        help="only show past runs' graphs",
    )


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    paths = TrainPaths.for_model(
        args.model,
        args.output_dir,
        lora=args.lora_dir,
        checkpoints=args.checkpoints_dir,
        logs=args.logs_dir,
    )
    names = (
        "method",
        "mode",
        "dataset_format",
        "max_examples",
        "validation_split",
        "epochs",
        "max_steps",
        "batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "max_seq_length",
        "optimizer",
        "gradient_checkpointing",
        "use_8bit",
        "train_router",
        "router_aux_loss_coef",
        "circular",
        "max_circular_epochs",
        "force_epochs",
        "patience",
        "overfitting_threshold",
        "min_evaluations",
        "eval_steps",
        "resume",
        "resume_from",
        "from_adapter",
        "tensorboard_port",
        "tensorboard_host",
        "seed",
        "device",
    )
    return TrainOptions(
        model_dir=args.model,
        data=args.data,
        paths=paths,
        tensorboard=not args.no_tensorboard,
        **{n: getattr(args, n) for n in names},
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run a parsed command line; returns the exit code. Also the entry of `llm_runtime train`."""
    from llm_runtime.training import board

    if args.tensorboard_only is not None:
        port = args.tensorboard_port if args.tensorboard_only == -1 else args.tensorboard_only
        paths = TrainPaths.for_model(args.model, args.output_dir, logs=args.logs_dir)
        return board.serve_only(paths.logs, port, args.tensorboard_host)
    if not args.data:
        print(
            "Error: --data is required (a file, folder, glob, comma list or name:split)",
            file=sys.stderr,
        )
        return 2
    from llm_runtime.training.trainer import run

    return run(options_from_args(args)).exit_code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Library deprecation notices (transformers' renamed arguments) are for us, not for the user.
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        return run_from_args(args)
    except TrainingError as error:
        if os.environ.get(DEBUG_ENV):
            raise
        print(error.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nAborted.", file=sys.stderr)
        return 130
    except Exception as error:  # loading, moving or wrapping the model can run out of memory too
        if not is_out_of_memory(error) or os.environ.get(DEBUG_ENV):
            raise
        print(out_of_memory(error).render(), file=sys.stderr)
        return 1
