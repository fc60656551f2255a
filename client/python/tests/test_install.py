# SPDX-License-Identifier: Apache-2.0
"""The package installs with pip (offline: --no-build-isolation uses the system's setuptools;
PyPI is not needed) and works from where it was installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import HERE


def test_pip_installs_the_package(tmp_path):
    for probe in ([sys.executable, "-c", "import setuptools"],
                  [sys.executable, "-m", "pip", "--version"]):
        probe = subprocess.run(probe, capture_output=True, text=True)
        if probe.returncode != 0:
            break
    if probe.returncode != 0:
        pytest.skip("pip and setuptools are needed to install the package "
                    f"(apt-get install python3-pip python3-setuptools): {probe.stderr.strip()}")
    src, site = tmp_path / "src", tmp_path / "site"
    shutil.copytree(HERE.parent, src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore",
               PIP_NO_INPUT="1")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation",
                        "--no-index", "--no-deps", "--target", str(site), str(src)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"pip install failed:\n{r.stdout}\n{r.stderr}"
    assert (site / "convd" / "py.typed").exists(), "py.typed (type hints) is not installed"
    assert not (site / "tests").exists(), "the tests were installed as a package"
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c",
                        "import convd; print(convd.__file__); print(convd.__version__);"
                        "print(convd.Client, convd.line.process, convd.raw.process)"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    path, version = r.stdout.splitlines()[:2]
    assert path.startswith(str(site)), f"imported from {path}, not the installed copy"
    import convd
    assert version == convd.__version__
