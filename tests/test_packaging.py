"""`pip install .` gives a working install: pyproject.toml declares every distribution stage5 imports
(rich and concurrent-log-handler were only in requirements.txt, so an install from pyproject broke), and
the package installs into a fresh venv whose `stage5 --version` answers.

Decision: the default suite checks the declared list statically (every import of stage5 resolves to a
declared distribution; offline, a second) and installs the package itself with `--no-deps` into a fresh
venv (a few seconds: the build backend comes from the package index), its dependencies lent from this
venv by a .pth; the full `pip install .` with every dependency from the index (~90 s) is marked slow.
Both skip, saying so, only when the package index cannot be reached."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = {"matplotlib": "bench"}  # perftest --plot only, asked for by name when missing
UNREACHABLE = ("Could not find a version", "No matching distribution", "Failed to establish", "Network is unreachable")


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]  # type: ignore[no-any-return]


def _imports() -> set[str]:
    """Top-level modules stage5 imports that are not its own nor the standard library's."""
    found: set[str] = set()
    for path in (ROOT / "stage5").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m != "stage5" and m not in sys.stdlib_module_names}


def _with_their_requirements(names: set[str]) -> set[str]:
    """The distributions pip installs for `names`: them and what they require, transitively (extras too)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(_name(r) for r in metadata.requires(name) or [])
        except metadata.PackageNotFoundError:
            pass
    return seen


def test_every_import_is_a_declared_dependency() -> None:
    project = _project()
    declared = {_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    installed_with = _with_their_requirements(declared)  # kombu comes with celery: pip installs it
    extras = {k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()}  # type: ignore[attr-defined]
    owners = metadata.packages_distributions()
    missing = []
    for module in sorted(_imports()):
        if module in OPTIONAL:
            assert _name(module) in extras[OPTIONAL[module]], f"{module} belongs to the {OPTIONAL[module]} extra"
            continue
        dists = {_name(d) for d in owners.get(module, [module])}
        if not dists & installed_with:
            missing.append(f"{module} (from {', '.join(sorted(dists))})")
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"
    pinned = {_name(line) for line in (ROOT / "requirements.txt").read_text().splitlines() if line[:1].isalpha()}
    assert declared <= pinned, f"not pinned in requirements.txt: {sorted(declared - pinned)}"


def _source_copy(tmp_path: Path) -> Path:
    """The package's sources in a folder of their own (a build never writes into the work tree)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "stage5", src / "stage5", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    return src


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    # ensurepip takes seconds; the bound only catches a hang (60 s ran out on this 2-core machine at load 12,
    # under xdist beside other suites)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=180)
    return venv


def _pip_install(venv: Path, *args: str, timeout: float) -> None:
    answer = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if answer.returncode and any(s in answer.stdout + answer.stderr for s in UNREACHABLE):
        pytest.skip(f"the package index cannot be reached: {answer.stderr.strip().splitlines()[-1]}")
    assert answer.returncode == 0, answer.stderr[-2000:]


def _version(venv: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    answer = subprocess.run(
        [str(venv / "bin" / "stage5"), "--version"], capture_output=True, text=True, timeout=60, env=env, cwd="/"
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    return answer.stdout.strip()


@pytest.mark.integration  # pip and the installed stage5 run as processes
def test_the_package_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    _pip_install(venv, "--no-deps", str(_source_copy(tmp_path)), timeout=180)
    # Its dependencies lent from this venv (declared ones, checked above), not the package itself.
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (site / "lent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import stage5; print(stage5.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    ).stdout
    assert installed.startswith(str(venv)), installed  # the installed copy, not the work tree's
    static = Path(installed.strip()).parent / "web" / "static"  # the console's files ship with it
    assert (static / "dashboard.html").is_file() and (static / "api.js").is_file(), f"no console files in {static}"
    from stage5 import __version__

    assert _version(venv) == f"stage5 {__version__}"


@pytest.mark.slow
@pytest.mark.integration  # pip and the installed stage5 run as processes
def test_pip_install_with_every_dependency_from_the_index(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    _pip_install(venv, str(_source_copy(tmp_path)), timeout=900)
    from stage5 import __version__

    assert _version(venv) == f"stage5 {__version__}"
