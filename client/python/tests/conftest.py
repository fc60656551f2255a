# SPDX-License-Identifier: Apache-2.0
"""Fixtures: a real convd daemon on a config in a temporary folder, and convd-run to compute
what it should answer.

The programs are taken from CONVD_BUILD_DIR (the Criterion test that runs this suite sets it
to its own folder, build/ or build-san/), else the tree's build/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # client/python/tests -> the top of the tree
sys.path.insert(0, str(HERE.parent))  # the package from the source tree

BUILD = Path(os.environ.get("CONVD_BUILD_DIR") or ROOT / "build").resolve()

# A two-channel model whose output is exact: y = (x0 / 2, 2 x1) (a Dense layer; products by
# powers of two and sums with zero are exact), for long streams checked without convd-run.
GAIN_MODEL = """{"format": "convd-model", "version": 1, "name": "gain", "input_channels": 2,
 "layers": [{"class_name": "Dense", "config": {"units": 2},
             "weights": [[[0.5, 0.0], [0.0, 2.0]], [0.0, 0.0]]}]}
"""


def program(name: str) -> Path:
    p = BUILD / name
    if not os.access(p, os.X_OK):
        pytest.fail(f"{p}: not built (make; CONVD_BUILD_DIR names the folder)")
    return p


class Daemon:
    """convd -c CONF, its listeners' ports read from its log."""

    LISTEN = re.compile(r"listen (\S+): (?:\[[^\]]*\]|[^ ,]*):(\d+),")

    def __init__(self, folder: Path, conf: str, names: "list[str]") -> None:
        self.conf = folder / "convd.conf"
        self.conf.write_text(conf)
        self.log = folder / "convd.log"
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=1").lstrip(":")
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen([str(program("convd")), "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._logf, env=env)
        self.ports = {}
        deadline = time.monotonic() + 30
        while set(names) - set(self.ports):
            if self.proc.poll() is not None:
                raise RuntimeError(f"convd exited ({self.proc.returncode}); its log:\n{self.text()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"convd did not listen within 30 s; its log:\n{self.text()}")
            for m in self.LISTEN.finditer(self.text()):
                self.ports[m.group(1)] = int(m.group(2))
            time.sleep(0.02)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"convd still running 30 s after SIGTERM; its log:\n{self.text()}")
        finally:
            self._logf.close()
        log = self.text()
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert mark not in log, f"convd's log has a sanitizer report:\n{log}"
        assert rc == 0, f"convd exited with {rc} after SIGTERM; its log:\n{log}"


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convd")
    (folder / "gain.json").write_text(GAIN_MODEL)
    models = ROOT / "config" / "models"
    conf = f"""
[server]
workers = 2
queue_limit = 65536
handshake_timeout = 30

[model drive]
path = {models / 'drive.json'}

[model vib]
path = {models / 'vibration-denoise.json'}

[model gain]
path = gain.json

[listen framed]
address = 127.0.0.1:0
protocol = framed
model = drive

[listen line]
address = 127.0.0.1:0
protocol = line
model = vib
rate = 1000
block = 1

[listen raw]
address = 127.0.0.1:0
protocol = raw
model = drive
"""
    d = Daemon(folder, conf, ["framed", "line", "raw"])
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    import convd
    return convd.Client("127.0.0.1", daemon.ports["framed"], timeout=30)


def convd_run(tmp_path: Path, model: str, x: np.ndarray, block: int = 64) -> np.ndarray:
    """What convd-run computes: x (frames, channels) through MODEL (a file of
    config/models, or a path) streamed in blocks of `block` frames."""
    path = ROOT / "config" / "models" / f"{model}.json"
    if not path.exists():
        path = Path(model)
    inp, out = tmp_path / "in.f32", tmp_path / "out.f32"
    np.ascontiguousarray(x, dtype="<f4").tofile(inp)
    r = subprocess.run([str(program("convd-run")), str(path), str(inp), str(out), "--block",
                        str(block), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"convd-run failed ({r.returncode}): {r.stderr}"
    y = np.fromfile(out, dtype="<f4")
    ch = {"drive": 1, "vibration-denoise": 3}.get(model, x.shape[1])
    return y.reshape(-1, ch)


@pytest.fixture
def run_ref(tmp_path):
    return lambda model, x, block=64: convd_run(tmp_path, model, x, block)
