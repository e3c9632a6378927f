"""``connected-unets synthesize``: translate a datalist's ROIs with a trained CycleGAN (configs/cyclegan_generate.yaml).

A module of its own so that :mod:`connected_unets.cli` only registers it (importing this costs no
torch). The command runs the bundle's ``common.yaml`` + ``cyclegan_train.yaml`` +
``cyclegan_generate.yaml`` with the network sizes stored in the weights file, so the networks are
the ones the weights were trained as, whatever the training's command line was.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``synthesize`` on the CLI's sub-command parsers."""
    parser = commands.add_parser(
        "synthesize", parents=parents, help="translate the ROIs of a datalist into another domain's style with a trained CycleGAN (masks carried over)"
    )
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="DATALIST",
                        help="datalist.json of the ROIs to translate (or its folder), as `connected-unets prepare` writes it")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output folder, outside the source's folders")
    parser.add_argument("--weights", type=Path, required=True, help="CycleGAN training state (cyclegan_train_state.pt of the training's output_dir)")
    parser.add_argument("--splits", default="all", help="comma-separated splits of the datalist to translate (default: all)")
    parser.add_argument("--examples", type=int, default=None, help="rows of examples.png (default: the bundle's, 8)")
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:1, ...")
    parser.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: the installed one)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Translate, then print where everything went; a refusal is one line (ValueError for cli.main)."""
    from .bundle import open_workflow, resolve_device, user_error
    from .gan_training import saved_settings
    from .preflight import SetupError

    splits: str | list[str] = "all" if args.splits == "all" else [s.strip() for s in args.splits.split(",") if s.strip()]
    try:
        overrides: dict[str, Any] = {
            **saved_settings(args.weights),
            "weights": str(args.weights),
            "source_datalist": str(args.source),
            "source_splits": splits,
            "synthetic_dir": str(args.out),
            "device": resolve_device(args.device),
        }
        if args.examples is not None:
            overrides["grid_examples"] = args.examples
        workflow = open_workflow(["cyclegan_train.yaml", "cyclegan_generate.yaml"], args.bundle, overrides)
        workflow.initialize()
        workflow.run()
    except SetupError as err:
        raise ValueError(err.message) from None
    except RuntimeError as err:
        cause = user_error(err)
        raise (cause if cause is not err else err) from None
    datalist = args.out / "datalist.json"
    print(f"{datalist}: translated ROIs marked synthetic (train with --synthetic_datalist {datalist}); "
          f"per-ROI SSIM and cycle error in translation.csv, examples in examples.png")  # fmt: skip
    return 0
