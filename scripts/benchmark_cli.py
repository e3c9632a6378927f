"""Seconds the CLI's ``segment`` takes for one shipped sample image and box, end to end, and where they go.

Each repeat runs, in fresh processes and interleaved: ``python -c "import torch"`` (the floor any
PyTorch command pays, the baseline of the ratios), ``python -c "import monai"``, the whole
``connected-unets segment IMAGE --box ... --out ...`` (lean: ``connected_unets.lean_imports``), the same
command run by ``cli.main`` with every import (what it cost before) and one process that stamps the stages
(import of the CLI, import of the Segmenter with torch and MONAI, ``Segmenter.from_bundle``, one
``segment_rois``). Prints a markdown table of medians.

    python scripts/benchmark_cli.py --repeats 3 [--out docs/benchmark_cli.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from connected_unets.bundle import bundle_dir
from connected_unets.io import atomic_output
from connected_unets.precision import cpu_model

STAGES = """
import json, sys, time
t0 = time.perf_counter()
import connected_unets.cli
connected_unets.cli.refuse_unused_imports()  # as the console command does for segment
t1 = time.perf_counter()
from connected_unets.inference import Segmenter
t2 = time.perf_counter()
from connected_unets.io import load_image
segmenter = Segmenter.from_bundle(device="cpu")
t3 = time.perf_counter()
image = load_image(sys.argv[1])
segmenter.segment_rois(image.array, [json.loads(sys.argv[2])], value_range=image.value_range)
t4 = time.perf_counter()
print(json.dumps({"import connected_unets.cli": t1 - t0, "import connected_unets.inference (torch, MONAI less its training stack)": t2 - t1,
                  "Segmenter.from_bundle() (config, weights, fast path)": t3 - t2, "segment_rois, one ROI, default options": t4 - t3}))
"""


SEGMENT = ("connected-unets segment (end to end)", "the same, every import (cli.main without lean_imports)")


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args()

    sample = json.loads((bundle_dir() / "sample_data" / "samples.json").read_text())[0]
    image, box = str(bundle_dir() / "sample_data" / sample["image"]), sample["boxes"][0]
    commands = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "python -c 'import monai'": [sys.executable, "-c", "import monai"],
    }
    full = "import sys; from connected_unets.cli import main; sys.exit(main(sys.argv[1:]))"  # no lean_imports
    walls: dict[str, list[float]] = {name: [] for name in [*commands, *SEGMENT]}
    stages: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        cli = [sys.executable, "-m", "connected_unets.cli", "segment", image, "--box", *map(str, box), "--out", str(Path(folder) / "mask.png")]
        for _ in tqdm(range(args.repeats), desc="rounds"):
            for name, command in commands.items():
                walls[name].append(timed(command))
            walls[SEGMENT[0]].append(timed(cli))
            walls[SEGMENT[1]].append(timed([sys.executable, "-c", full, *cli[3:]]))
            done = subprocess.run([sys.executable, "-c", STAGES, image, json.dumps(box)], check=True, capture_output=True, text=True)
            stages.append(json.loads(done.stdout.strip().splitlines()[-1]))
    floor = statistics.median(walls["python -c 'import torch'"])
    lines = [
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, {args.repeats} interleaved rounds, "
        f"median; image {Path(image).name}, box {box}; ratio = time / `import torch`.",
        "",
        "| what | s | ratio to `import torch` |",
        "|---|---|---|",
    ]
    for name, values in walls.items():
        lines.append(f"| `{name}` | {statistics.median(values):.2f} | {statistics.median(values) / floor:.1f}x |")
    for name in stages[0]:
        value = statistics.median(s[name] for s in stages)
        lines.append(f"| stage: {name} | {value:.2f} | {value / floor:.1f}x |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        with atomic_output(args.out) as tmp:
            tmp.write_text(table)


if __name__ == "__main__":
    main()
