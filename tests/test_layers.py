"""The package layers: every import points down, no package imports a script, and library code never parses a
command line (only options/ and the scripts do)."""

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

# Lowest first; a module may import its own package and the packages below it.
LAYERS = ["util", "networks", "data", "engine", "commands", "options", "dataset", "weights"]
# Packages that hold `python -m` scripts: like scripts, nothing imports them.
SCRIPT_PACKAGES = {"dataset", "weights"}
SCRIPTS = {p.stem for p in ROOT.glob("*.py")}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level name) of every absolute import of a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _package_modules() -> list[tuple[str, Path]]:
    return [(package, path) for package in LAYERS for path in sorted((ROOT / package).rglob("*.py"))]


def test_every_package_is_in_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    assert packages == set(LAYERS)


def test_imports_point_down():
    upward = []
    for package, path in _package_modules():
        for line, name in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if name in SCRIPTS:
                upward.append(f"{where} imports the script {name}.py")
            elif name in SCRIPT_PACKAGES and name != package:
                upward.append(f"{where} imports {name}, a package of scripts")
            elif name in LAYERS and LAYERS.index(name) > LAYERS.index(package):
                upward.append(f"{where} imports {name}, a layer above {package}")
    assert upward == []


def test_util_is_a_leaf():
    inward = [f"{path.relative_to(ROOT)}:{line} imports {name}" for package, path in _package_modules()
              if package == "util" for line, name in _imports(path) if name in LAYERS and name != "util"]
    assert inward == []


def test_only_options_and_scripts_parse_command_lines():
    parsing = []
    for package, path in _package_modules():
        if package == "options" or package in SCRIPT_PACKAGES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "parse_args", "parse_known_args", "ArgumentParser", "Namespace"):
                parsing.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.attr}")
            if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                    "argparse" in (alias.name if isinstance(node, ast.Import) else node.module or "")
                    for alias in node.names):
                parsing.append(f"{path.relative_to(ROOT)}:{node.lineno} imports argparse")
    assert parsing == []


def test_the_checker_names_file_and_line(tmp_path, monkeypatch):
    """The layer rule itself: an upward import planted in util/ is reported with its file and line."""
    import tests.test_layers as layers

    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "util" / "bad.py").write_text("import os\nfrom engine.training import train\n")
    monkeypatch.setattr(layers, "ROOT", tmp_path)
    monkeypatch.setattr(layers, "SCRIPTS", set())
    with pytest.raises(AssertionError, match="util/bad.py:2 imports engine, a layer above util"):
        layers.test_imports_point_down()
