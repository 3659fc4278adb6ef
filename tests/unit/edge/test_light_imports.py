"""The edge stays light: no server package is imported, and it runs on Python 3.9."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

import paho
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
FORBIDDEN = ["pydantic", "aiomqtt", "fastapi", "influxdb_client", "apprise", "numpy", "broker_bridge",
             "alerting", "dashboard", "vigil.app.config",
             "vigil.core.reading", "vigil.core.event", "uvicorn", "starlette"]

SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys

    FORBIDDEN = %r

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                raise ImportError(f"the edge must not import {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    import edge
    for info in pkgutil.walk_packages(edge.__path__, "edge."):
        importlib.import_module(info.name)
    from vigil.app.cli import main
    try:
        main(["edge", "--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
    code = main(["edge", "--once", "--simulate", "t0", "--device", "pi-1"])
    leaked = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not leaked, leaked
    # What paho imports but the agent never uses stays unloaded (edge/_deferred.py), on 3.9 too.
    from edge._deferred import PAHO_UNUSED, is_deferred
    assert all(is_deferred(n) for n in PAHO_UNUSED) and "http.client" not in sys.modules, PAHO_UNUSED
    sys.exit(code)
""") % (FORBIDDEN,)


def run_script(python: str, pythonpath: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([python, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_every_edge_module_imports_and_runs_without_server_packages() -> None:
    done = run_script(sys.executable, str(ROOT))
    assert done.returncode == 0, done.stderr
    assert "usage: vigil edge" in done.stdout
    assert "vigil/readings/pi-1/t0 {\"value\":" in done.stdout


@pytest.mark.skipif(not PY39.exists(), reason=f"{PY39} is not installed here")
def test_the_edge_compiles_and_runs_on_python_3_9(tmp_path: Path) -> None:
    for path in sorted((ROOT / "edge").rglob("*.py")):
        py_compile.compile(str(path), cfile=str(tmp_path / "x.pyc"), doraise=True)
        subprocess.run([str(PY39), "-m", "py_compile", str(path)], check=True, capture_output=True)
    # paho-mqtt is pure Python and PyYAML falls back to its pure-Python loader: run them under 3.9 too.
    libs = tmp_path / "lib"
    libs.mkdir()
    (libs / "paho").symlink_to(Path(paho.__path__[0]))
    (libs / "yaml").symlink_to(Path(yaml.__file__).parent)
    done = run_script(str(PY39), f"{libs}{os.pathsep}{ROOT}")
    assert done.returncode == 0, done.stderr
    assert "vigil/readings/pi-1/t0 {\"value\":" in done.stdout
