"""The locks agree with pyproject.toml: CI and the README install from them, with --no-deps for
StrokeLens itself, so a dependency missing from a lock, or pinned outside what pyproject allows,
would go unnoticed by pip."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
#: the interpreter the locks are made for (.ci/lock)
LOCKED_PYTHON = {"python_version": "3.11", "python_full_version": "3.11.7"}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)", re.MULTILINE)


def pins(lock: str) -> dict[str, Version]:
    text = (ROOT / lock).read_text()
    return {canonicalize_name(name): Version(version) for name, version in PIN.findall(text)}


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    if extra:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    found += [Requirement(r) for r in build]  # installed from the lock: --no-build-isolation
    return [r for r in found if r.marker is None or r.marker.evaluate(LOCKED_PYTHON)]


def test_each_lock_pins_every_declared_dependency_to_a_version_pyproject_allows():
    for lock, extra in (("requirements.lock", None), ("requirements-test.lock", "test")):
        locked = pins(lock)
        for requirement in declared(extra):
            version = locked.get(canonicalize_name(requirement.name))
            assert version is not None, f"{lock} lacks {requirement.name}: run bash .ci/lock"
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock} pins {requirement.name}=={version}, pyproject wants {requirement}"
            )


def test_runtime_lock_is_the_test_lock_less_the_test_tools():
    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert runtime.items() <= test.items()
    assert {"pytest", "pytest-qt", "ruff", "medpy"} <= test.keys() - runtime.keys()
