"""The Makefile and .ci/run do what the README says, read and dry-run, never run
whole: `make` alone lists the targets, every target the README names exists
and runs what it says (``make -n``), and CI installs Chromium when it is
missing and then runs ``make test`` (with stub commands on PATH)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


# What a `make test PYTEST_ARGS=...` that runs these tests would pass down to the
# make they start (MAKEFLAGS carries command-line variables): not the Makefile's own.
_MAKE_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTEST_ARGS", "VENV", "PYTHON")


def _make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _MAKE_ENV}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _readme_targets() -> set[str]:
    readme = (ROOT / "README.md").read_text("utf-8")
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", readme, flags=re.S))
    found = set(re.findall(r"^\s*(?:NEWSMON_CONFIG=\S+ )?make ([a-z][a-z-]*)", blocks, flags=re.M))
    found |= set(re.findall(r"`make ([a-z][a-z-]*)`", readme))
    return found


def test_make_alone_lists_the_targets_and_creates_nothing(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    dry = _make("-n", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "-m venv" not in dry.stdout and "pip install" not in dry.stdout, dry.stdout
    done = _make(cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile"]
    listed = set(re.findall(r"^make ([a-z][a-z-]*)", done.stdout, flags=re.M))
    assert _readme_targets() <= listed, done.stdout


def test_every_target_the_readme_names_runs_what_it_says(tmp_path: Path) -> None:
    targets = _readme_targets()
    assert {"demo", "test", "lint", "bench", "airflow-standalone", "airflow-test"} <= targets
    # A virtualenv that does not exist: the dry run shows the install steps
    # even where `make test` has made .venv (CI runs this test from there).
    venv = tmp_path / "venv"
    commands = {}
    for target in sorted(targets):
        dry = _make("-n", target, f"VENV={venv}")
        assert dry.returncode == 0, f"make -n {target}: {dry.stderr}"
        commands[target] = dry.stdout
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"]
    for target, out in commands.items():
        for named in re.findall(r"pip install --quiet -e '\.\[([\w,]+)\]'", out):
            assert set(named.split(",")) <= set(extras), (target, named)
    assert f"-m venv {venv}" in commands["demo"]
    assert ".[dev]" in commands["demo"]
    assert commands["demo"].rstrip().endswith(f"{venv}/bin/newsmon demo")
    assert ".[dev,airflow]" in commands["test"]
    assert commands["test"].rstrip().endswith(f"{venv}/bin/python -m pytest -n 2")
    serial = _make("-n", "test", f"VENV={venv}", "PYTEST_ARGS=")
    assert serial.returncode == 0, serial.stderr
    assert serial.stdout.rstrip().endswith(f"{venv}/bin/python -m pytest")
    assert commands["bench"].rstrip().endswith(f"{venv}/bin/python -m benchmarks")
    assert commands["airflow-test"].rstrip().endswith("-m pytest tests/airflow")
    assert 'airflow pools set newsmon_duckdb 1 "' in commands["airflow-standalone"]
    assert "airflow standalone" in commands["airflow-standalone"]


# -- .ci/run, with stub commands -------------------------------------------------------------

def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def _ci(tmp_path: Path, *, uid: int, chromium: bool, sudo: bool = True
        ) -> tuple[int, list[str]]:
    """Run .ci/run with only stubs and the shell on PATH; return its exit code
    and the stubs' calls, in order."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "calls"
    for tool in ("bash", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        (bin_ / tool).symlink_to(found)
    record = f'echo "$(basename "$0") $*" >> {log}'
    _stub(bin_, "basename", 'echo "${1##*/}"')
    _stub(bin_, "id", f"echo {uid}")
    for name in ("apt-get", "make", *(["sudo"] if sudo else [])):
        _stub(bin_, name, record)
    if chromium:
        for name in ("chromium", "chromedriver"):
            _stub(bin_, name, record)
    done = subprocess.run([str(bin_ / "bash"), str(ROOT / ".ci" / "run")],
                          env={"PATH": str(bin_), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    calls = log.read_text("utf-8").splitlines() if log.exists() else []
    return done.returncode, calls


def test_ci_installs_chromium_when_missing_then_runs_make_test(tmp_path: Path) -> None:
    code, calls = _ci(tmp_path, uid=0, chromium=False)
    assert code == 0
    assert calls[-1] == "make test"
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert len(installs) == 1 and installs[0].split()[-2:] == ["chromium", "chromium-driver"]


def test_ci_leaves_an_installed_chromium_alone(tmp_path: Path) -> None:
    code, calls = _ci(tmp_path, uid=0, chromium=True)
    assert code == 0
    assert calls == ["make test"]


def test_ci_installs_chromium_through_sudo_when_not_root(tmp_path: Path) -> None:
    code, calls = _ci(tmp_path, uid=1000, chromium=False)
    assert code == 0
    assert calls[-1] == "make test"
    installs = [c for c in calls if c.startswith("sudo") and "apt-get install" in c]
    assert len(installs) == 1 and installs[0].split()[-2:] == ["chromium", "chromium-driver"]


def test_ci_without_root_or_sudo_says_so_and_still_runs_the_tests(tmp_path: Path) -> None:
    code, calls = _ci(tmp_path, uid=1000, chromium=False, sudo=False)
    assert code == 0
    assert calls == ["make test"]


def test_make_test_then_make_demo_installs_once(tmp_path: Path) -> None:
    # With stub python and newsmon in the virtualenv: what each target runs.
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    log = tmp_path / "calls"
    for name in ("python", "newsmon"):
        _stub(bin_, name, f'echo "{name} $*" >> {log}')
    for target in ("test", "demo", "test"):
        done = _make(target, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert log.read_text("utf-8").splitlines() == [
        "python -m pip install --quiet -e .[dev,airflow]",
        "python -m pytest -n 2",
        "newsmon demo",
        "python -m pytest -n 2",
    ]
