"""Rules of the repository as a whole, checked over its files.

- **Nothing points outside the repository.** Users clone it on their own machines: a doc, docstring,
  comment or config that names a sibling folder of the development machine (a relative path up
  and out of the clone) or an absolute path of that machine (:data:`OUTSIDE`) tells them nothing.
  Facts go into the repository's docs (``docs/data.md`` says where the full dataset comes from),
  citations name public code and papers. The one documented exception: a few scripts DEFAULT to
  the full dataset in a ``shared`` folder beside the repository's folder when no path is given
  (:data:`SIBLING_DEFAULT`); :data:`SIBLING_DEFAULTS` lists them, and each takes the folder as an
  argument or environment variable (``docs/data.md``).
- **Each kind of ``_target_`` has one home**: transforms in ``connected_unets/transforms.py``, event
  handlers in ``connected_unets/handlers.py``, in the code and in the configs' ``_target_`` entries.
- **One list of networks**: the catalogue ``connected_unets.bundle`` (importable without torch); the
  network registry of ``connected_unets.networks`` maps exactly its names to classes.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "monai_bundle" / "connected_unets"
CONFIGS = REPO / "monai_bundle" / "configs"

#: the kinds of files that hold prose, code or configuration
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".json", ".sh", ".toml", ".cfg", ".ini", ".conf", ".txt"}
#: what points outside a clone (written in two parts so that this file does not match itself)
OUTSIDE = ("..", "/shared"), ("/wo", "rk/")
#: a default of the full dataset's folder beside the repository (Python and shell spellings)
SIBLING_DEFAULT = re.compile("|".join((r'parent\s*/\s*"shar' + 'ed"', r"\)/shar" + "ed/")))
#: the files allowed such a default, each a documented argument or environment default (docs/data.md)
SIBLING_DEFAULTS = {
    "scripts/make_sample_data.py": "SOURCE_DIR argument",
    "scripts/prepare_shipped_training_data.py": "SOURCE_DIR argument",
    "scripts/prepare_shipped_detection_data.py": "SOURCE_DIR argument",
    "scripts/prepare_cyclegan_domains.py": "--cesm",
    "scripts/train_detector.sh": "$CDD_CESM_DM",
    "tests/conftest.py": "$CONNECTED_UNETS_SHARED",
}
TRANSFORM_BASES = {"Transform", "MapTransform", "RandomizableTransform", "Randomizable", "InvertibleTransform", "LazyTransform"}


def repository_files() -> list[str]:
    """What a clone holds: the tracked files and the new ones not ignored (about to be committed)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (REPO / name).is_file()})


def text_files() -> list[str]:
    return [name for name in repository_files() if Path(name).suffix in TEXT_SUFFIXES]


def test_nothing_points_outside_the_repository():
    patterns = ["".join(parts) for parts in OUTSIDE]
    found = []
    for name in text_files():
        for number, line in enumerate((REPO / name).read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            found += [f"{name}:{number}: {pattern!r} in {line.strip()[:160]}" for pattern in patterns if pattern in line]
    assert not found, "paths outside the repository (put the fact in docs/, cite the public source, or use a relative path):\n" + "\n".join(found)


def test_defaults_beside_the_repository_are_only_the_documented_ones():
    using = {name for name in text_files() if SIBLING_DEFAULT.search((REPO / name).read_text(encoding="utf-8", errors="replace"))}
    assert using <= set(SIBLING_DEFAULTS), f"a default outside the repository in {sorted(using - set(SIBLING_DEFAULTS))}: take the path as an argument (docs/data.md)"
    assert using == set(SIBLING_DEFAULTS), f"allowed but no longer used (remove from SIBLING_DEFAULTS): {sorted(set(SIBLING_DEFAULTS) - using)}"
    documented = (REPO / "docs" / "data.md").read_text()
    for name in SIBLING_DEFAULTS:
        if name.startswith("scripts/"):
            assert Path(name).name in documented, f"{name}: its default folder is not described in docs/data.md"


# --------------------------------------------------------------------------- one home per kind of _target_


def _package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _base_names(node: ast.ClassDef) -> set[str]:
    return {base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "") for base in node.bases}


def test_transforms_are_defined_only_in_transforms_py():
    elsewhere = []
    for path in _package_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and _base_names(node) & TRANSFORM_BASES and path != PACKAGE / "transforms.py":
                elsewhere.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.name}")
    assert not elsewhere, "MONAI transforms outside connected_unets/transforms.py:\n" + "\n".join(elsewhere)


def test_event_handlers_are_attached_only_in_handlers_py():
    elsewhere = []
    for path in _package_modules():
        if path == PACKAGE / "handlers.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            attaches = isinstance(node, ast.Attribute) and node.attr == "add_event_handler"
            bar = isinstance(node, (ast.Name, ast.alias)) and getattr(node, "id", getattr(node, "name", "")) == "ProgressBar"
            if attaches or bar:
                elsewhere.append(f"{path.relative_to(REPO)}:{node.lineno if hasattr(node, 'lineno') else '?'}")
    assert not elsewhere, "ignite event handlers outside connected_unets/handlers.py:\n" + "\n".join(elsewhere)


def _config_targets() -> list[tuple[str, str]]:
    """(config file, target) for every ``connected_unets...`` component of the bundle's configs."""

    def walk(value):
        if isinstance(value, dict):
            if isinstance(value.get("_target_"), str):
                yield value["_target_"]
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    return [(path.name, target) for path in sorted(CONFIGS.glob("*.yaml")) for target in walk(yaml.safe_load(path.read_text())) if target.startswith("connected_unets.")]


def test_the_configs_take_transforms_from_transforms_py_and_handlers_from_handlers_py():
    from monai.transforms import Transform

    targets = _config_targets()
    assert targets, "no connected_unets _target_ found in the configs"
    misplaced = []
    for config, target in targets:
        module, _, name = target.rpartition(".")
        obj = getattr(importlib.import_module(module), name)
        if isinstance(obj, type) and issubclass(obj, Transform) and module != "connected_unets.transforms":
            misplaced.append(f"{config}: {target} is a transform")
        if isinstance(obj, type) and callable(getattr(obj, "attach", None)) and module != "connected_unets.handlers":
            misplaced.append(f"{config}: {target} is an event handler")
    assert not misplaced, "\n".join(misplaced)
    homes = {target.rpartition(".")[0] for _, target in targets}
    assert {"connected_unets.transforms", "connected_unets.handlers"} <= homes


# --------------------------------------------------------------------------- one list of networks


def test_the_catalogue_imports_without_torch():
    """The Slicer panel and the scripts list networks before (or without) torch: the catalogue costs no torch or MONAI import."""
    code = "import sys, connected_unets.bundle; assert 'torch' not in sys.modules, 'torch'; assert 'monai' not in sys.modules, 'monai'"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_network_registry_has_exactly_the_catalogues_networks():
    from connected_unets import bundle
    from connected_unets.networks import CONNECTED, NETWORKS, get_network

    assert list(NETWORKS) == list(bundle.NETWORKS)  # same names, the catalogue's order
    assert CONNECTED == bundle.connected_networks()
    for name, info in bundle.NETWORKS.items():
        assert info.name == name
        if info.base is not None:  # a Connected network joins two of a single network of the catalogue
            assert bundle.NETWORKS[info.base].base is None
    assert bundle.DEFAULT_NETWORK in bundle.NETWORKS
    assert not set(bundle.PEERS) & set(bundle.NETWORKS)
    for name in bundle.PEERS:  # a peer is built by its own config, not by the registry; its weights file is the catalogue's
        with pytest.raises(ValueError, match="unknown network"):
            get_network(name)
        parser = bundle.open_config(["train.yaml", f"{name}.yaml"])
        assert parser.get_parsed_content("network_name") == name
        assert Path(parser.get_parsed_content("model_file")) == bundle.weights_file(name)
