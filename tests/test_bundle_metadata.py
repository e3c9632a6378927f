"""Checks of the MONAI bundle's configs/metadata.json against the vendored schema.

`python -m monai.bundle verify_metadata` downloads the schema named by the metadata's
"schema" URL unless `--filepath` points at a file that already exists; the project keeps
its own copy in schemas/meta_schema.json so that verification works offline.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
META = REPO / "monai_bundle" / "configs" / "metadata.json"
SCHEMA = REPO / "schemas" / "meta_schema.json"
TENSOR_KEYS = {
    "type",
    "format",
    "modality",
    "num_channels",
    "spatial_shape",
    "dtype",
    "value_range",
    "is_patch_data",
    "channel_def",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_network_prefix() -> list[str]:
    """`unshare -n` (a fresh network namespace without interfaces) where it works, else nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    try:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [unshare, "-n"] if probe.returncode == 0 else []


NO_NET = _no_network_prefix()


def _verify_cmd(meta_file: Path, schema_file: Path = SCHEMA) -> list[str]:
    return NO_NET + [
        sys.executable,
        "-m",
        "monai.bundle",
        "verify_metadata",
        "--meta_file",
        str(meta_file),
        "--filepath",
        str(schema_file),
    ]


def _drop_network_data_format(meta: dict) -> None:
    del meta["network_data_format"]


def _num_channels_as_string(meta: dict) -> None:
    meta["network_data_format"]["inputs"]["image"]["num_channels"] = "3"


def _drop_output_channel_def(meta: dict) -> None:
    del meta["network_data_format"]["outputs"]["pred"]["channel_def"]


def _is_patch_data_as_string(meta: dict) -> None:
    meta["network_data_format"]["outputs"]["pred"]["is_patch_data"] = "true"


def _drop_changelog(meta: dict) -> None:
    del meta["changelog"]


def _drop_required_packages(meta: dict) -> None:
    del meta["required_packages_version"]


def _four_spatial_dims(meta: dict) -> None:
    meta["network_data_format"]["outputs"]["pred"]["spatial_shape"] = ["16*n", "16*n", "16*n", "1"]


# run through the real command line, in parallel (each run spends ~10 s importing monai)
CLI_BREAKAGES = [_drop_network_data_format, _num_channels_as_string]
# the same verify_metadata function, called in-process to keep the suite fast
INPROCESS_BREAKAGES = [
    _drop_output_channel_def,
    _is_patch_data_as_string,
    _drop_changelog,
    _drop_required_packages,
    _four_spatial_dims,
]


@pytest.fixture(scope="module")
def schema_before() -> tuple[str, int]:
    return _sha256(SCHEMA), SCHEMA.stat().st_mtime_ns


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, schema_before) -> dict[str, subprocess.CompletedProcess]:
    """Good metadata and each CLI breakage, verified by `python -m monai.bundle verify_metadata`."""
    tmp = tmp_path_factory.mktemp("cli_meta")
    good = json.loads(META.read_text(encoding="utf-8"))
    files = {"good": META}
    for breakage in CLI_BREAKAGES:
        broken = copy.deepcopy(good)
        breakage(broken)
        files[breakage.__name__] = tmp / f"{breakage.__name__}.json"
        files[breakage.__name__].write_text(json.dumps(broken, indent=2), encoding="utf-8")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = {
        name: subprocess.Popen(
            _verify_cmd(path), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for name, path in files.items()
    }
    runs = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        runs[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    return runs


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads(META.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def test_schema_is_a_valid_json_schema(schema):
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    assert schema["$schema"].startswith("https://json-schema.org/draft/2020-12/")
    assert "$comment" in schema
    for key in (
        "schema",
        "version",
        "changelog",
        "monai_version",
        "pytorch_version",
        "numpy_version",
        "required_packages_version",
        "task",
        "description",
        "authors",
        "copyright",
        "network_data_format",
    ):
        assert key in schema["required"], key
    assert set(schema["$defs"]["tensor"]["required"]) == TENSOR_KEYS


def test_cli_runs_without_network():
    """Reports (as a skip under -ra) when the CLI checks could not be cut off from the network."""
    if not NO_NET:
        pytest.skip("`unshare -n` unavailable (needs root or user namespaces): CLI checks ran with the network")
    probe = subprocess.run(
        NO_NET + [sys.executable, "-c", "import socket; socket.create_connection(('1.1.1.1', 443), timeout=3)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0, "network reachable inside `unshare -n`"


@pytest.mark.slow  # the CLI fixture runs 3 monai imports in parallel: ~30 s on 2 cores
def test_verify_metadata_passes_offline_with_vendored_schema(cli_runs, schema_before):
    result = cli_runs["good"]
    assert result.returncode == 0, result.stdout
    assert "metadata is verified with no error" in result.stdout
    assert "skipped downloading" in result.stdout, result.stdout
    # the vendored schema was used as is: not downloaded over, not rewritten
    assert (_sha256(SCHEMA), SCHEMA.stat().st_mtime_ns) == schema_before


@pytest.mark.slow
@pytest.mark.parametrize("breakage", [b.__name__ for b in CLI_BREAKAGES])
def test_cli_rejects_broken_metadata(cli_runs, schema_before, breakage):
    result = cli_runs[breakage]
    assert result.returncode != 0, result.stdout
    assert "Failed validating" in result.stdout, result.stdout
    assert (_sha256(SCHEMA), SCHEMA.stat().st_mtime_ns) == schema_before


def _verify_inprocess(meta: dict, tmp_path: Path) -> None:
    from monai.bundle import verify_metadata

    meta_file = tmp_path / "metadata.json"
    meta_file.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    verify_metadata(meta_file=str(meta_file), filepath=str(SCHEMA))


@pytest.mark.filterwarnings("ignore:`torch.jit", "ignore:No hash value provided")
def test_schema_url_is_never_fetched(tmp_path, metadata, schema_before):
    """Point "schema" at an address nothing listens on: verification must still pass,
    so the URL is not contacted when --filepath exists (holds even without `unshare`)."""
    meta = copy.deepcopy(metadata)
    meta["schema"] = "http://127.0.0.1:9/unreachable/meta_schema.json"
    _verify_inprocess(meta, tmp_path)
    assert (_sha256(SCHEMA), SCHEMA.stat().st_mtime_ns) == schema_before


@pytest.mark.filterwarnings("ignore:`torch.jit", "ignore:No hash value provided")
@pytest.mark.parametrize("breakage", INPROCESS_BREAKAGES, ids=lambda b: b.__name__)
def test_verify_metadata_rejects_broken_metadata(tmp_path, metadata, breakage):
    broken = copy.deepcopy(metadata)
    breakage(broken)
    with pytest.raises(ValueError, match="Failed validating"):
        _verify_inprocess(broken, tmp_path)


def test_changelog_contains_version(metadata):
    assert metadata["version"] in metadata["changelog"]


def test_network_data_format(metadata):
    nd = metadata["network_data_format"]
    image, pred = nd["inputs"]["image"], nd["outputs"]["pred"]
    for tensor in (image, pred):
        assert TENSOR_KEYS <= set(tensor)
        assert len(tensor["spatial_shape"]) == 2  # 2-D bundle: MONAI Label takes dimension from this
    assert pred["channel_def"] == {"0": "background", "1": "mass"}
    assert pred["num_channels"] == 1  # one sigmoid channel
    assert image["num_channels"] == len(image["channel_def"]) == 3


def _base(v: str) -> str:
    return v.split("+", 1)[0]  # drop a local label such as "+cpu"


def test_core_versions_match_installed(metadata):
    """A dependency bump must come with a metadata update."""
    import monai
    import numpy
    import torch

    assert metadata["monai_version"] == monai.__version__
    assert metadata["pytorch_version"] == _base(torch.__version__)
    assert metadata["numpy_version"] == numpy.__version__


@pytest.mark.parametrize("field", ["required_packages_version"])
def test_package_versions_are_installed_at_least(metadata, field):
    packages = metadata[field]
    assert packages, field
    for name, wanted in packages.items():
        try:
            have = installed_version(name)
        except PackageNotFoundError:
            pytest.fail(f"{field}: {name} is not installed")
        assert Version(_base(have)) >= Version(wanted), f"{field}: {name} {have} < {wanted}"
