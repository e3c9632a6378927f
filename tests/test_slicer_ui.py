"""Static checks of the 3D Slicer extension that need no Slicer: the .ui file against the Widget
code, the CMake lists against the files, the extension metadata, the module's pip requirements
against pyproject.toml. Runs in the main venv and in the slicer-core venv."""

from __future__ import annotations

import ast
import json
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "SlicerConnectedUNets"
MODULE_PY = MODULE_DIR / "SlicerConnectedUNets.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "SlicerConnectedUNets.ui"

#: Widget classes Slicer's loadUI can build: Qt's, CTK's and Slicer's MRML widgets used here.
KNOWN_CLASSES = {
    "QCheckBox", "QComboBox", "QDoubleSpinBox", "QLabel", "QPlainTextEdit", "QProgressBar", "QPushButton", "QWidget",
    "ctkCollapsibleButton", "ctkPathLineEdit", "qMRMLCheckableNodeComboBox", "qMRMLNodeComboBox", "qMRMLWidget",
}  # fmt: skip


def ui_widgets() -> dict[str, str]:
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


def widget_names_used_by_code() -> set[str]:
    return set(re.findall(r"self\.ui\.(\w+)", MODULE_PY.read_text()))


def test_every_widget_the_code_uses_exists_in_the_ui_file():
    widgets = ui_widgets()
    used = widget_names_used_by_code()
    assert used, "the Widget code refers to no self.ui.<name>: did the regex break?"
    assert not used - set(widgets), f"missing in {UI_FILE.name}: {sorted(used - set(widgets))}"


def test_ui_widgets_are_known_classes_and_custom_ones_are_declared():
    root = ET.parse(UI_FILE).getroot()
    classes = set(ui_widgets().values())
    assert classes <= KNOWN_CLASSES, sorted(classes - KNOWN_CLASSES)
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    assert {c for c in classes if not c.startswith("Q")} <= declared


def test_every_mrml_widget_gets_the_scene():
    """qMRML widgets only list nodes when the top widget's mrmlSceneChanged reaches setMRMLScene."""
    root = ET.parse(UI_FILE).getroot()
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget"
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("sender") == top.get("name")
        and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    mrml = {name for name, cls in ui_widgets().items() if cls.startswith("qMRML") and name != top.get("name")}
    assert mrml and mrml <= connected, sorted(mrml - connected)


def test_node_selectors_offer_the_right_node_types():
    root = ET.parse(UI_FILE).getroot()

    def node_types(name):
        widget = next(w for w in root.iter("widget") if w.get("name") == name)
        prop = next(p for p in widget.iter("property") if p.get("name") == "nodeTypes")
        return [s.text for s in prop.iter("string")]

    assert node_types("inputVolumeSelector") == ["vtkMRMLScalarVolumeNode"]
    assert node_types("roiSelector") == ["vtkMRMLMarkupsROINode"]
    assert node_types("outputSegmentationSelector") == ["vtkMRMLSegmentationNode"]


def test_module_file_has_the_four_classes():
    tree = ast.parse(MODULE_PY.read_text())
    classes = {node.name: [ast.unparse(b) for b in node.bases] for node in tree.body if isinstance(node, ast.ClassDef)}
    assert "ScriptedLoadableModule" in classes["SlicerConnectedUNets"]
    assert "ScriptedLoadableModuleWidget" in classes["SlicerConnectedUNetsWidget"]
    assert "ScriptedLoadableModuleLogic" in classes["SlicerConnectedUNetsLogic"]
    assert "ScriptedLoadableModuleTest" in classes["SlicerConnectedUNetsTest"]


def test_lib_imports_no_gui():
    """The Lib must import in slicer-core (no qt, ctk, slicer.util GUI, slicer.app); only an install
    in ``dependencies`` reaches ``slicer.util``, when it runs inside Slicer."""
    for path in (MODULE_DIR / "SlicerConnectedUNetsLib").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(qt|ctk|slicer\.util|slicer\.ScriptedLoadableModule)\b", text, re.M), path
        assert "slicer.app" not in text and "slicer.mrmlScene" not in text, path


def test_install_code_and_network_list_live_in_one_place_each():
    """Installing is ``dependencies``' job; the networks are the bundle catalogue's
    (``connected_unets.bundle``): neither the module file nor the rest of the Lib repeats them."""
    lib = MODULE_DIR / "SlicerConnectedUNetsLib"
    for path in (MODULE_PY, lib / "engine.py", lib / "mrml_logic.py"):
        text = path.read_text()
        for word in ("pip_install", "PyTorchUtils", "importlib.metadata", "requirements.txt", '"unet"', '"connected_resunets"'):
            assert word not in text, (path.name, word)
    assert "dependencies.ensure_installed(" in MODULE_PY.read_text()


def cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"no set({variable} ...)"
    return [item.replace("${MODULE_NAME}", "SlicerConnectedUNets") for item in match.group(1).split()]


def test_module_cmake_lists_every_python_file_and_resource():
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    scripts = cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = cmake_list(text, "MODULE_PYTHON_RESOURCES")
    on_disk_py = {p.relative_to(MODULE_DIR).as_posix() for p in MODULE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    on_disk_resources = {p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    assert set(scripts) == on_disk_py
    assert set(resources) == on_disk_resources
    assert "slicerMacroBuildScriptedModule" in text and "WITH_GENERIC_TESTS" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_root_cmake_has_the_extension_fields():
    text = (REPO / "CMakeLists.txt").read_text()
    for field in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert re.search(rf"set\(EXTENSION_{field} \"[^\"]+\"\)", text), field
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in text
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in text
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(SlicerConnectedUNets)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):  # fmt: skip
        assert line in text, line
    assert (MODULE_DIR / "Resources" / "Icons" / "SlicerConnectedUNets.png").is_file()


def test_extensions_index_entry_matches_the_cmake():
    entry = json.loads((MODULE_DIR / "ExtensionsIndex" / "SlicerConnectedUNets.json").read_text())
    allowed = {"$schema", "build_dependencies", "build_subdirectory", "category", "scm_revision", "scm_type", "scm_url", "tier"}
    assert set(entry) <= allowed and {"$schema", "category", "scm_url"} <= set(entry)
    assert entry["category"] == "Segmentation" and entry["build_dependencies"] == ["PyTorch"]
    repository = re.search(r'set\(CONNECTED_UNETS_REPOSITORY_URL "([^"]+)"\)', (REPO / "CMakeLists.txt").read_text()).group(1)
    assert entry["scm_url"].removesuffix(".git") == repository


def test_module_requirements_follow_pyproject():
    """What the module pip-installs into Slicer pins the same versions as the package, and never
    torch (PyTorchUtils picks the CUDA build) nor numpy (Slicer's compiled modules need their own)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package = {Requirement(r).name.lower(): Requirement(r) for r in pyproject["project"]["dependencies"]}
    lines = [line.split("#")[0].strip() for line in (MODULE_DIR / "Resources" / "requirements.txt").read_text().splitlines()]
    module = [Requirement(line) for line in lines if line]
    assert not {"torch", "numpy"} & {r.name.lower() for r in module}
    for requirement in module:
        name = requirement.name.lower()
        if name in package:
            assert requirement.specifier == package[name].specifier, f"{name}: {requirement.specifier} vs pyproject {package[name].specifier}"
    names = {r.name.lower() for r in module}
    assert {"monai", "scikit-image", "pydicom", "nibabel", "pillow", "pyyaml"} <= names


@pytest.mark.parametrize("path", ["SlicerConnectedUNets/README.md"])
def test_readme_covers_the_topics(path):
    text = (REPO / path).read_text().lower()
    for topic in ("install", "first use", "segment", "gpu", "cpu", "offline", "known limits", "seconds"):
        assert topic in text, topic
