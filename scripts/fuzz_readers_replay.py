"""Replay the fuzz test's seeds and mutations (tests/test_fuzz_readers.py) against a reader module,
the package's or an older ``io.py``, and count what breaks the readers' contract: a finite 2-D
float32 picture, or one ``ImageReadError`` line naming the file. docs/reliability.md records what
the reader before the fuzz test's commit gave:

    git show 499bc12^:monai_bundle/connected_unets/io.py > /tmp/old_io.py
    python scripts/fuzz_readers_replay.py --reader /tmp/old_io.py --examples 15000
    python scripts/fuzz_readers_replay.py --examples 15000        # today's connected_unets.io

Hypothesis draws new examples every run (no database), so the counts vary from run to run.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def reader(path: Path | None):  # noqa: ANN201 - a module
    if path is None:
        import connected_unets.io as module

        return module
    spec = importlib.util.spec_from_file_location("replayed_io", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["replayed_io"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", type=Path, default=None, help="an io.py to load instead of connected_unets.io")
    parser.add_argument("--examples", type=int, default=3000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import numpy as np
    import test_fuzz_readers as fuzz
    from hypothesis import HealthCheck, Phase, given, settings

    io = reader(args.reader)
    make_seeds = getattr(fuzz.seeds, "__wrapped__", None) or fuzz.seeds._get_wrapped_function()
    seeds = make_seeds(REPO / "monai_bundle" / "sample_data")
    broken: collections.Counter = collections.Counter()
    example: dict[tuple[str, str], str] = {}

    @settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(case=fuzz.broken_files(seeds))
    def check(case: tuple[str, str, bytes]) -> None:
        seed, name, data = case
        kind = seed.rsplit(".", 1)[-1]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            try:
                image = io.load_image(path)
            except io.ImageReadError as err:
                if str(err).startswith(f"{path}: ") and "\n" not in str(err):
                    return
                key = ("ImageReadError that is not one line naming the file", kind)
            except BaseException as err:  # noqa: BLE001 - what escapes is what is counted
                if isinstance(err, KeyboardInterrupt):
                    raise
                key = (f"{type(err).__module__}.{type(err).__name__}", kind)
                example.setdefault(key, str(err).splitlines()[0][:120] if str(err) else "")
            else:
                array = image.array
                if array.ndim == 2 and array.dtype == np.float32 and array.size and np.isfinite(array).all():
                    return
                key = (f"read as {array.dtype} {array.shape}, finite: {bool(np.isfinite(array).all())}", kind)
            broken[key] += 1

    started = time.monotonic()
    check()
    print(f"{args.reader or 'connected_unets.io'}: {args.examples} examples in {time.monotonic() - started:.0f} s, {sum(broken.values())} broke the contract")
    for (what, kind), count in broken.most_common():
        print(f"  {count:4d} x {what} (a mutated .{kind} seed): {example.get((what, kind), '')}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
