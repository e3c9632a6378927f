"""The front doors a corpus case goes through, what each did (:class:`Outcome`), and the rules every
door must keep whatever the input (:func:`violations`).

A door runs as a user drives it: the CLI in-process through ``connected_unets.cli.main`` (which
loads its model from the bundle's weights file, as every ``connected-unets segment`` does) or as a
process, the Python API (``load_image`` + ``Segmenter.segment_rois``), bundle inference
(``segment_datalist``, and ``python -m monai.bundle run`` with common.yaml + inference.yaml),
``prepare --dataset folder`` and ``evaluate``; the Slicer Logic's door is in
tests/mrml/slicer_door.py (it needs slicer-core). The whole case folder is hashed before and after,
so a changed input or a file left behind shows. Where the corpus declares that a case's mask must
be the good input's (``Expect.matches``), the mask written is compared with the one the API gives
for the shipped sample and its box (:func:`reference_mask`), computed in the same run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from conftest import kept_rng_state  # tests/conftest.py: tests/ is on sys.path under pytest and in bad_input_report.py
from PIL import Image

from .corpus import (
    API, BUNDLE, BUNDLE_DOOR, BUNDLE_RUN, CLI, CLI_PROCESS, ERROR, EVALUATE, GOOD, GOOD_BOX, NOT_LOADED, NOTHING, PREPARE, SAMPLE_DIR,
    SKIPPED, WRITTEN, Case, Expect, Made,
)  # fmt: skip

EVALUATE_LEFTOVERS = ("run.json",)  # a failed evaluation keeps the record of its attempt, nothing else
PROCESS_TIMEOUT_S = 300


@dataclass
class Outcome:
    """What one door did with one case."""

    outcome: str  # corpus.WRITTEN / NOTHING / ERROR / SKIPPED, or "crash" (an exception escaped)
    message: str  # the line a user reads: the error, the first skip or nothing-found reason, or what was written
    exit_code: int | None = None  # CLI and process doors
    text: str = ""  # everything printed and logged (stdout, stderr, log records)
    warnings: list[str] = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # of every mask written or returned
    found: list[bool] = field(default_factory=list)  # per ROI (single-image doors)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # per ROI, as the results give them
    written: int = 0  # masks (bundle) or lesions (prepare) written
    outputs: set[str] = field(default_factory=set)  # files the door says it wrote (relative to the case folder)
    new: set[str] = field(default_factory=set)  # files that appeared in the case folder
    changed: list[str] = field(default_factory=list)  # files that were there before and changed or vanished
    temporaries: list[str] = field(default_factory=list)  # .tmp-* files of atomic writes left anywhere
    door: str = ""
    masks: list[np.ndarray] = field(default_factory=list)  # per image written or returned: all its ROIs' masks in one
    likeness: list[float] = field(default_factory=list)  # per mask: Dice with the good input's mask (Expect.matches)
    identical: list[bool] = field(default_factory=list)  # per mask: pixel for pixel the good input's mask
    names: tuple[str, ...] = ()  # what the door calls the input, if not its file (the Slicer volume node's name)
    scene_changed: bool = False  # the Slicer door: a failed run left a node in the scene or changed one


# --------------------------------------------------------------------------- running a door


def run_door(case: Case, door: str, folder: Path, segmenter: Any) -> tuple[Made, Outcome]:
    """Make ``case`` in ``folder``, send it through ``door`` and say what happened."""
    made = case.make(folder)
    out_dir = made.out_dir or folder / re.sub(r"\W+", "-", door)
    before = snapshot(folder)
    with read_only(made.read_only), kept_rng_state():  # evaluation calls set_determinism(seed)
        outcome = DOORS[door](made, out_dir, segmenter)
    if case.doors[door].matches is not None and outcome.masks:
        reference = reference_mask(segmenter)
        outcome.likeness = [dice(mask, reference) for mask in outcome.masks]
        outcome.identical = [mask.shape == reference.shape and bool(np.array_equal(mask, reference)) for mask in outcome.masks]
    after = snapshot(folder)
    outcome.changed = sorted(path for path, digest in before.items() if after.get(path) != digest)
    outcome.new = {path for path in after if path not in before}
    outcome.temporaries = sorted(path for path in after if Path(path).name.startswith(".tmp-"))
    outcome.outputs = {_relative(path, folder) for path in outcome.outputs}
    outcome.door = door
    return made, outcome


_REFERENCES: dict[int, tuple[Any, np.ndarray]] = {}


def reference_mask(segmenter: Any) -> np.ndarray:
    """The good input's mask: the shipped sample (the "good jpeg" case) and its mass box through the
    Python API on ``segmenter``, computed once per Segmenter (with today's weights, whatever they are)."""
    from connected_unets.io import load_image

    key = id(segmenter)
    if key not in _REFERENCES:
        image = load_image(SAMPLE_DIR / GOOD["image"])
        results = segmenter.segment_rois(image.array, [list(GOOD_BOX)], source="the good input", value_range=image.value_range)
        assert results[0].found, "the shipped model finds no mass in the good input's box"
        _REFERENCES[key] = (segmenter, np.logical_or.reduce([r.mask > 0 for r in results]))  # the Segmenter kept: its id stays its own
    return _REFERENCES[key][1]


def dice(mask: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two masks; a mask of another size (a resampled input) is first shrunk or grown onto
    the reference's pixel grid by area (a pixel is in where at least half of it is)."""
    mask = np.asarray(mask) > 0
    if mask.shape != reference.shape:
        resized = Image.fromarray(mask.astype(np.float32)).resize(reference.shape[::-1], Image.BOX)
        mask = np.asarray(resized) >= 0.5
    total = int(mask.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((mask & reference).sum()) / total


def snapshot(folder: Path) -> dict[str, str]:
    """sha1 of every file under ``folder`` (links by their target's name), by relative path."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            digests[_relative(path, folder)] = "link:" + os.readlink(path)
        elif path.is_file():
            digests[_relative(path, folder)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return digests


def _relative(path: str | Path, folder: Path) -> str:
    path = Path(path)
    return path.relative_to(folder).as_posix() if path.is_absolute() and path.is_relative_to(folder) else path.as_posix()


@contextlib.contextmanager
def read_only(folders: Sequence[Path]) -> Iterator[None]:
    """The folders made unwritable for the block: mode 0555, and for root, who ignores modes, immutable."""
    locked = []
    try:
        for folder in folders:
            folder.chmod(0o555)
            if os.geteuid() == 0:
                subprocess.run(["chattr", "+i", str(folder)], check=True)
            locked.append(folder)
        yield
    finally:
        for folder in locked:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(folder)], check=False)
            folder.chmod(0o755)


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, list[logging.LogRecord]]]:
    """stdout and stderr into one buffer, and the package's log records at INFO and above (what
    ``-v`` shows: which weights file was loaded, on which device)."""
    buffer, records = io.StringIO(), []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("connected_unets")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer, records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _logged(records: Sequence[logging.LogRecord]) -> tuple[str, list[str]]:
    lines = [f"{r.levelname} {r.getMessage()}" for r in records]
    return "\n".join(lines), [r.getMessage() for r in records if r.levelno == logging.WARNING]


def _crash(err: BaseException, text: str) -> Outcome:
    import traceback

    return Outcome("crash", f"{type(err).__name__}: {err}".splitlines()[0], text=text + "".join(traceback.format_exception(err)))


def _box_args(boxes: Any) -> list[str]:
    return [arg for box in boxes for arg in ("--box", *(str(v) for v in box))]


def _cli_command(made: Made, out_dir: Path) -> tuple[list[str], Path]:
    out = made.out or out_dir / "mask.png"
    return ["segment", str(made.image), *_box_args(made.boxes), "--out", str(out), "--device", "cpu"], out


def _read_tables(out: Path) -> tuple[list[bool], list[np.ndarray], list[str], list[tuple[int, int, int, int]]]:
    """found, mask (all ROIs in one), notes and boxes of a written result (its _rois.json and its PNG mask)."""
    from connected_unets.writers import roi_table_paths

    rows = json.loads(roi_table_paths(out)[1].read_text())["rois"]
    masks = [np.asarray(Image.open(out)) > 0] if out.name.lower().endswith(".png") else []
    return [r["found"] for r in rows], masks, [r["note"] for r in rows], [(r["x0"], r["y0"], r["x1"], r["y1"]) for r in rows]


def _segment_outcome(code: int, printed: str, log: str, out: Path, warnings: list[str]) -> Outcome:
    """The outcome of `segment`, from its exit status, what it printed (stdout) and logged, and the files it wrote."""
    from connected_unets.writers import roi_table_paths

    text = printed + log
    if code == 0:
        found, masks, notes, boxes = _read_tables(out)
        outcome = NOTHING if not any(found) else WRITTEN
        message = next((n for n in notes if n), "") if outcome == NOTHING else printed.strip().splitlines()[-1]
        outputs = {str(out), *map(str, roi_table_paths(out))}
        return Outcome(outcome, message, code, text, warnings, [m.shape for m in masks], found, boxes, 1, outputs, masks=masks)
    lines = [line for line in text.splitlines() if line.startswith("connected-unets: error: ")]
    message = lines[-1].removeprefix("connected-unets: error: ") if lines else text.strip()
    return Outcome(ERROR if code == 2 else "crash", message, code, text, warnings)


def run_cli(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """``connected-unets segment`` in-process, as a user runs it: it reads the image, checks the
    boxes and --out, then loads its Segmenter from the bundle's weights file (``cli._segmenter``)."""
    from connected_unets import cli

    args, out = _cli_command(made, out_dir)
    with captured() as (buffer, records):
        try:
            code = cli.main(args)
        except BaseException as err:  # noqa: BLE001 - a traceback is what the corpus looks for
            return _crash(err, buffer.getvalue())
    log, warnings = _logged(records)
    return _segment_outcome(code, buffer.getvalue(), log, out, warnings)


def _process(args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)


def _process_warnings(text: str) -> list[str]:
    return [line.removeprefix("WARNING ") for line in text.splitlines() if line.startswith("WARNING ")]


def run_cli_process(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """``python -m connected_unets.cli segment ...``: the exit status and stderr a shell sees."""
    args, out = _cli_command(made, out_dir)
    done = _process(["-m", "connected_unets.cli", *args])
    return _segment_outcome(done.returncode, done.stdout, done.stderr, out, _process_warnings(done.stderr))


def run_api(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """``load_image`` + ``Segmenter.segment_rois``: results, or the ValueError (ImageReadError) raised."""
    from connected_unets.io import load_image

    with captured() as (buffer, records):
        try:
            image = load_image(made.image)
            results = segmenter.segment_rois(image.array, made.boxes, source=str(made.image), value_range=image.value_range)
        except ValueError as err:
            log, warnings = _logged(records)
            return Outcome(ERROR, str(err), text=buffer.getvalue() + log, warnings=warnings)
        except BaseException as err:  # noqa: BLE001
            return _crash(err, buffer.getvalue())
    log, warnings = _logged(records)
    found = [r.found for r in results]
    outcome = WRITTEN if any(found) else NOTHING
    message = next((r.reason for r in results if r.reason), "") if outcome == NOTHING else f"{sum(r.area for r in results)} mass pixels"
    shapes = [r.mask.shape for r in results]
    masks = [np.logical_or.reduce([r.mask > 0 for r in results])]
    text = buffer.getvalue() + log
    return Outcome(outcome, message, None, text, warnings, shapes, found, [tuple(r.box) for r in results], len(results), masks=masks)


def _datalist(made: Made) -> list[dict]:
    return made.items if made.items is not None else [{"image": str(made.image), "boxes": made.boxes}]


def _inference_outcome(summary: dict, out_dir: Path, text: str, warnings: list[str], code: int | None = None) -> Outcome:
    """The outcome of bundle inference from its inference_summary.json and the files it names."""
    from connected_unets.writers import roi_table_paths

    found: list[bool] = []
    masks: list[np.ndarray] = []
    notes: list[str] = []
    boxes: list[tuple[int, int, int, int]] = []
    outputs = {str(out_dir / "inference_summary.json")}
    for entry in summary["written"]:
        mask = Path(entry["mask"])
        more_found, more_masks, more_notes, more_boxes = _read_tables(mask)
        found, masks, notes, boxes = found + more_found, masks + more_masks, notes + more_notes, boxes + more_boxes
        outputs |= {str(mask), *map(str, roi_table_paths(mask)), *([entry["detections"]] if entry.get("detections") else [])}
    skipped = [entry["reason"] for entry in summary["skipped"]]
    if skipped:
        outcome, message = SKIPPED, skipped[0]
    elif not any(found):
        outcome, message = NOTHING, next((n for n in notes if n), "")
    else:
        outcome, message = WRITTEN, f"{len(summary['written'])} mask(s) written"
    shapes = [m.shape for m in masks]
    return Outcome(outcome, message, code, text, warnings, shapes, found, boxes, len(summary["written"]), outputs, masks=masks)


def run_bundle(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """``segment_datalist``, what inference.yaml's ``run`` calls, on the Segmenter loaded once."""
    from connected_unets.inference import segment_datalist
    from connected_unets.preflight import SetupError

    with captured() as (buffer, records):
        try:
            summary = segment_datalist(segmenter, _datalist(made), out_dir)
        except (ValueError, OSError, SetupError) as err:
            log, warnings = _logged(records)
            return Outcome(ERROR, str(err), text=buffer.getvalue() + log, warnings=warnings)
        except BaseException as err:  # noqa: BLE001
            return _crash(err, buffer.getvalue())
    log, warnings = _logged(records)
    return _inference_outcome(summary, out_dir, buffer.getvalue() + log, warnings)


def run_bundle_process(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """``python -m monai.bundle run`` with common.yaml + inference.yaml on a samples.json of the datalist."""
    config_dir = out_dir.parent / "monai-bundle-run-config"
    config_dir.mkdir(parents=True)
    (config_dir / "samples.json").write_text(json.dumps(_datalist(made), indent=1))
    configs = "['configs/common.yaml','configs/inference.yaml']"
    done = _process(["-m", "monai.bundle", "run", "--config_file", configs, "--dataset_dir", str(config_dir), "--output_dir", str(out_dir)], cwd=BUNDLE)
    text = done.stdout + done.stderr
    summary_file = out_dir / "inference_summary.json"
    if done.returncode != 0 or not summary_file.is_file():
        last = text.strip().splitlines()[-1].removeprefix("error: ") if text.strip() else ""
        return Outcome(ERROR if done.returncode == 1 else "crash", last, done.returncode, text, outputs={str(config_dir / "samples.json")})
    outcome = _inference_outcome(json.loads(summary_file.read_text()), out_dir, text, _process_warnings(text), done.returncode)
    outcome.outputs.add(str(config_dir / "samples.json"))
    return outcome


def _in_process(args: Sequence[str]) -> tuple[int | None, str, list[str], BaseException | None]:
    """``connected_unets.cli.main(args)``: exit status, everything printed and logged, the warnings."""
    from connected_unets import cli

    with captured() as (buffer, records):
        try:
            code, error = cli.main(list(args)), None
        except BaseException as err:  # noqa: BLE001
            code, error = None, err
    log, warnings = _logged(records)
    return code, buffer.getvalue() + log, warnings, error


def _error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("connected-unets: error: ")]
    return lines[-1].removeprefix("connected-unets: error: ") if lines else text.strip()


def run_prepare(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """``connected-unets prepare --dataset folder``: lesions written and what was skipped, from datalist.json."""
    code, text, warnings, error = _in_process(["prepare", "--dataset", "folder", "--root", str(made.root), "--out", str(out_dir)])
    if error is not None:
        return _crash(error, text)
    if code != 0:
        return Outcome(ERROR if code == 2 else "crash", _error_line(text), code, text, warnings)
    datalist = json.loads((out_dir / "datalist.json").read_text())
    lesions = [entry for name, entries in datalist.items() if name != "skipped" for entry in entries]
    skipped = [entry["reason"] for entry in datalist["skipped"]]
    outputs = {str(out_dir / "datalist.json"), str(out_dir / "summary.txt"), *(str(p) for p in (out_dir / ".prepare").glob("*.json"))}
    outputs |= {str(out_dir / entry[key]) for entry in lesions for key in ("image", "label")}
    outcome, message = (SKIPPED, skipped[0]) if skipped else (WRITTEN, f"{len(lesions)} lesion(s) written")
    return Outcome(outcome, message, code, text, warnings, written=len(lesions), outputs=outputs)


def run_evaluate(made: Made, out_dir: Path, segmenter: Any) -> Outcome:
    """``connected-unets evaluate`` on the validation split of the case's datalist."""
    args = ["evaluate", "--dataset-dir", str(made.dataset_dir), "--split", "validation", "--out", str(out_dir), "--device", "cpu"]
    code, text, warnings, error = _in_process(args)
    if error is not None:
        return _crash(error, text)
    if code != 0:
        leftovers = {str(out_dir / name) for name in EVALUATE_LEFTOVERS}
        return Outcome(ERROR if code == 2 else "crash", _error_line(text), code, text, warnings, outputs=leftovers)
    return Outcome(WRITTEN, "report written", code, text, warnings, outputs={str(p) for p in out_dir.rglob("*") if p.is_file()})


DOORS: dict[str, Callable[[Made, Path, Any], Outcome]] = {
    CLI: run_cli, CLI_PROCESS: run_cli_process, API: run_api, BUNDLE_DOOR: run_bundle, BUNDLE_RUN: run_bundle_process,
    PREPARE: run_prepare, EVALUATE: run_evaluate,
}  # fmt: skip


# --------------------------------------------------------------------------- the rules


def wrong_outcome(outcome: Outcome, expect: Expect, made: Made) -> str:
    """The door's outcome is the one the corpus declares."""
    if outcome.outcome != expect.outcome:
        return f"outcome {outcome.outcome!r}, expected {expect.outcome!r}: {outcome.message}"
    return ""


def traceback_shown(outcome: Outcome, expect: Expect, made: Made) -> str:
    """No door shows a traceback or lets an exception escape."""
    if outcome.outcome == "crash" or "Traceback (most recent call last)" in outcome.text:
        return f"traceback: {outcome.text.strip()[-2000:]}"
    return ""


def bad_message(outcome: Outcome, expect: Expect, made: Made) -> str:
    """An error or skip is one line that names the file and the problem; a nothing-found ROI says why."""
    if expect.says and expect.says not in outcome.message:
        return f"message {outcome.message!r} does not say {expect.says!r}"
    if outcome.outcome in (ERROR, SKIPPED, NOT_LOADED):
        if "\n" in outcome.message.strip():
            return f"message of several lines: {outcome.message!r}"
        if outcome.names:  # the Slicer Logic names the volume node (Slicer names it after the file)
            if not any(name in outcome.message for name in outcome.names):
                return f"message {outcome.message!r} names none of {list(outcome.names)}"
            return ""
        named = made.named()
        if named is not None and str(named) not in outcome.message:
            return f"message {outcome.message!r} does not name {named}"
    return ""


def wrong_exit_code(outcome: Outcome, expect: Expect, made: Made) -> str:
    """The CLI exits 2 after an error and 0 otherwise; monai.bundle run exits 1 after a refusal (as
    training's preflight does) and 0 otherwise, a bad item being a skip."""
    if outcome.exit_code is None:
        return ""
    wanted = 0 if expect.outcome != ERROR else 1 if outcome.door == BUNDLE_RUN else 2
    return "" if outcome.exit_code == wanted else f"exit code {outcome.exit_code}, expected {wanted}"


def input_changed(outcome: Outcome, expect: Expect, made: Made) -> str:
    """No input file (nor anything else that was there before) is changed or removed."""
    return f"changed or removed: {outcome.changed}" if outcome.changed else ""


def half_written(outcome: Outcome, expect: Expect, made: Made) -> str:
    """Nothing is left half-written: no temporaries, and no file but the results the door reports
    (none after an error, only the written items' files after a skip)."""
    if outcome.temporaries:
        return f"temporaries left: {outcome.temporaries}"
    if outcome.scene_changed:
        return "the failed run left the scene changed (a node added, removed or modified)"
    strays = outcome.new - outcome.outputs
    return f"files written that are no result: {sorted(strays)}" if strays else ""


def wrong_result(outcome: Outcome, expect: Expect, made: Made) -> str:
    """A written result is a mask of the image's shape per ROI, with the found flags, boxes and
    counts the corpus declares, and the warning that explains a conversion."""
    if expect.outcome in (WRITTEN, NOTHING) and made.shape is not None and outcome.shapes and any(s != made.shape for s in outcome.shapes):
        return f"mask shapes {outcome.shapes}, the image is {made.shape}"
    if expect.found is not None and tuple(outcome.found) != expect.found:
        return f"found {outcome.found}, expected {list(expect.found)}"
    if expect.outcome == NOTHING and any(outcome.found):
        return f"found {outcome.found}, expected nothing"
    if expect.boxes is not None and tuple(outcome.boxes) != expect.boxes:
        return f"boxes {outcome.boxes}, expected {list(expect.boxes)}"
    if expect.written is not None and outcome.written != expect.written:
        return f"{outcome.written} written, expected {expect.written}"
    if expect.warns and not any(expect.warns in w and _names(w, made, outcome) for w in outcome.warnings):
        return f"no warning naming the file says {expect.warns!r}: {outcome.warnings}"
    return ""


def _names(warning: str, made: Made, outcome: Outcome | None = None) -> bool:
    if outcome is not None and any(f"'{name}'" in warning for name in outcome.names):
        return True
    return made.image is None or str(made.image) in warning or made.image.name in warning


def unlike_reference(outcome: Outcome, expect: Expect, made: Made) -> str:
    """Where the case is a good input in another form (another encoding, bit depth, colour model,
    size, path), the mask is the good input's: identical (``matches`` 1.0), or at least the Dice
    ``matches`` with it where the pixels legitimately differ (lossy re-encoding, luminance,
    resampling; a mask of another size is compared on the good input's pixel grid)."""
    if expect.matches is None or outcome.outcome != WRITTEN:
        return ""
    if not outcome.masks or len(outcome.likeness) != len(outcome.masks):
        return "no mask to compare with the good input's"
    for index, (likeness, identical) in enumerate(zip(outcome.likeness, outcome.identical)):
        if expect.matches >= 1.0 and not identical:
            return f"mask {index + 1} is not the good input's (Dice {likeness:.4f} with it, expected identical)"
        if likeness < expect.matches:
            return f"mask {index + 1}: Dice {likeness:.4f} with the good input's mask, expected >= {expect.matches}"
    return ""


RULES = (wrong_outcome, traceback_shown, bad_message, wrong_exit_code, input_changed, half_written, wrong_result, unlike_reference)


def violations(outcome: Outcome, expect: Expect, made: Made) -> list[str]:
    """Every rule the outcome breaks, one sentence each (empty: the door did what the corpus says)."""
    return [problem for rule in RULES if (problem := rule(outcome, expect, made))]

