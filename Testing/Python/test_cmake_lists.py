"""The extension's CMake files list every file Slicer must install (Slicer does not glob).

``slicerMacroBuildScriptedModule`` copies only the ``SCRIPTS`` and ``RESOURCES`` it is given, so a
Python file or resource added to a module folder but not to its ``CMakeLists.txt`` would be
missing from the installed extension. These tests fail until the new file is listed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_FOLDERS = ("L3Locator", "L3LocatorTraining")
#: Build and tool leftovers that are never installed.
IGNORED_PARTS = ("__pycache__", ".pytest_cache")
IGNORED_SUFFIXES = (".pyc", ".egg-info")
#: Files of a module folder that are deliberately not installed into Slicer (folders end in "/"):
#: the synthetic-CT generator and the demo built on it serve tests, benchmarks and developers.
NOT_INSTALLED = {"L3Locator": ("l3locator/phantoms/", "l3locator/demo.py"), "L3LocatorTraining": ()}


def cmake_list(cmake_text: str, variable: str, module_name: str) -> list[str]:
    """Entries of ``set(<variable> ...)``, with ``${MODULE_NAME}`` expanded."""
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", cmake_text, re.DOTALL)
    assert match, f"no set({variable} ...) in CMakeLists.txt"
    body = re.sub(r"#[^\n]*", "", match.group(1))
    return [entry.replace("${MODULE_NAME}", module_name) for entry in body.split()]


def installable_files(folder: Path) -> set[str]:
    files = set()
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if not path.is_file() or path.name == "CMakeLists.txt" or path.name.startswith("."):
            continue
        if any(part in IGNORED_PARTS or part.endswith(IGNORED_SUFFIXES) for part in relative.parts):
            continue
        if relative.as_posix().startswith(NOT_INSTALLED[folder.name]):
            continue
        files.add(relative.as_posix())
    return files


@pytest.mark.parametrize("module", MODULE_FOLDERS)
def test_every_python_file_is_listed_as_a_script(module):
    folder = ROOT / module
    scripts = cmake_list((folder / "CMakeLists.txt").read_text(), "MODULE_PYTHON_SCRIPTS", module)
    assert len(scripts) == len(set(scripts)), "a script is listed twice"
    python_files = {name for name in installable_files(folder) if name.endswith(".py")}
    assert sorted(python_files - set(scripts)) == [], "add these to MODULE_PYTHON_SCRIPTS"
    assert sorted(set(scripts) - python_files) == [], "these listed scripts do not exist"
    assert f"{module}.py" in scripts


@pytest.mark.parametrize("module", MODULE_FOLDERS)
def test_every_other_file_is_listed_as_a_resource(module):
    folder = ROOT / module
    resources = cmake_list((folder / "CMakeLists.txt").read_text(), "MODULE_PYTHON_RESOURCES", module)
    other_files = {name for name in installable_files(folder) if not name.endswith(".py")}
    assert sorted(other_files - set(resources)) == [], "add these to MODULE_PYTHON_RESOURCES"
    assert sorted(set(resources) - other_files) == [], "these listed resources do not exist"
    assert {f"Resources/Icons/{module}.png", f"Resources/UI/{module}.ui"} <= set(resources)


def test_modules_build_as_scripted_modules_with_their_self_test():
    for module in MODULE_FOLDERS:
        text = (ROOT / module / "CMakeLists.txt").read_text()
        assert f"set(MODULE_NAME {module})" in text
        assert "slicerMacroBuildScriptedModule(" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_extension_metadata_and_modules():
    text = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r'set\(EXTENSION_CATEGORY "Quantification"\)', text)
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL"):
        assert re.search(rf'set\({variable} "[^"]+"\)', text), variable
    assert [m for m in re.findall(r"add_subdirectory\((\w+)\)", text)] == list(MODULE_FOLDERS)
    icon = re.search(r'set\(EXTENSION_ICONURL "[^"]*/main/([^"]+)"\)', text).group(1)
    assert (ROOT / icon).is_file()
