"""Keep an inference-only process from importing MONAI's training and plotting stack.

``import monai`` imports every MONAI subpackage, and those pull in whatever optional library is
installed: pytorch-ignite (with much of ``torch.distributed``), matplotlib and ``scipy.signal``. A
process that only segments never uses them, yet they are about half of the import (4.0 of 8.3 s on
a 2-core AVX2 CPU, docs/benchmark_cli.md). MONAI treats each as optional and goes on without it, so
a program that will only segment refuses them before anything imports MONAI.

Only for a whole process that is about to start (the console command): in a process that already
imported MONAI, or one that goes on to train (pytest, Slicer, MONAI Label), refusing them would
break what comes later, so ``refuse_unused_imports`` does nothing there.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec

UNUSED_BY_INFERENCE = ("ignite", "matplotlib", "scipy.signal")


class _Refuse(importlib.abc.MetaPathFinder):
    """Answers an import of one of ``names`` (or below) as if the library were not installed."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if any(fullname == name or fullname.startswith(name + ".") for name in self.names):
            raise ModuleNotFoundError(f"{fullname} is not imported by an inference-only process", name=fullname)
        return None


def refuse_unused_imports(names: Sequence[str] = UNUSED_BY_INFERENCE) -> bool:
    """Refuse ``names`` for the rest of this process; False (and nothing done) once MONAI or one of them is in."""
    if any(module in sys.modules for module in ("monai", *names)):
        return False
    sys.meta_path.insert(0, _Refuse(names))
    return True
