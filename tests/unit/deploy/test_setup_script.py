"""deploy/setup.sh: what each mode installs, that it shows progress, and that --dev covers what the tests run.

The script prints its plan (``--print-plan``); it is also run for real against stand-ins for
apt-get, dpkg-query, python3 and npm that record their arguments, so the plan is what it does.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SETUP = ROOT / "deploy" / "setup.sh"
SERVER_ONLY_APT = {"nodejs", "npm", "mosquitto", "mosquitto-clients", "influxdb", "victoria-metrics", "chromium"}
# Executables the tests use only when present, with a fallback the dev set-up installs.
OPTIONAL = {"docker": "tests/unit/deploy/test_docker.py falls back to docker-compose"}
needs_debian = pytest.mark.skipif(not all(shutil.which(c) for c in ("ldd", "dpkg", "apt-cache")),
                                  reason="needs Debian's ldd, dpkg and apt-cache")


def plan(*args: str) -> dict[str, str]:
    out = subprocess.run(["bash", str(SETUP), "--print-plan", *args], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return dict(line.split(": ", 1) for line in out.splitlines())


def commands(p: dict[str, str]) -> dict[str, str]:
    """Command -> the Debian package it comes from, from the plan's ``commands:`` line."""
    out: dict[str, str] = {}
    for entry in p["commands"].split():
        package, _, cmds = entry.partition("=")
        out.update({c: package for c in cmds.split(",") if c})
    return out


def test_the_edge_mode_installs_python3_venv_and_the_edge_extra_only() -> None:
    p = plan("--edge")
    apt = set(p["apt"].split())
    assert apt == {"python3", "python3-venv"}, apt
    assert not apt & SERVER_ONLY_APT
    assert p["pip"] == ".[edge]" and p["npm"] == "none"


def test_the_server_mode_installs_what_vigil_up_needs() -> None:
    p = plan()
    apt = set(p["apt"].split())
    assert {"python3-venv", "mosquitto", "nodejs", "npm"} <= apt
    assert not apt & {"chromium", "influxdb", "libatomic1"}, "test tools belong to --dev"
    assert p["pip"] == "-e .[server,edge]" and p["npm"] == "dashboard/web"


def test_the_dev_mode_installs_libatomic1_and_the_server() -> None:
    p = plan("--dev")
    assert set(plan()["apt"].split()) | {"libatomic1", "chromium"} <= set(p["apt"].split())
    assert p["pip"] == "-e .[server,edge,dev]"


def test_an_unknown_option_is_refused_with_the_ones_that_exist() -> None:
    out = subprocess.run(["bash", str(SETUP), "--pi"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "unknown option '--pi'; use --edge, --dev, --print-plan or --help" in out.stderr


# -- the script run for real, against recording stand-ins ------------------------------------

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "$RECORD"
case "$(basename "$0")" in
  dpkg-query) exit 1 ;;                                   # nothing is installed
  apt-get) echo "Get:1 http://deb.debian.org/debian bookworm/main fake 1.0 [1 kB]" ;;
  python3) mkdir -p .venv/bin && cp "$0" .venv/bin/python ;;
  python) case "$*" in *"[edge]"*) echo "Successfully installed vigil-0.1.0" ;; esac ;;
  npm) echo "added 1 package in 1s" ;;
esac
"""


def run_setup(tmp_path: Path, *args: str) -> tuple[list[str], str]:
    """Run a copy of setup.sh in a checkout-like folder with every installer replaced; (calls, output)."""
    checkout = tmp_path / "checkout"
    (checkout / "deploy").mkdir(parents=True)
    shutil.copy(SETUP, checkout / "deploy" / "setup.sh")
    (checkout / "dashboard" / "web").mkdir(parents=True)
    (checkout / "dashboard" / "web" / "package.json").write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("apt-get", "dpkg-query", "python3", "npm", "sudo"):
        (bin_dir / name).write_text(FAKE if name != "sudo" else '#!/bin/sh\nexec "$@"\n')
        (bin_dir / name).chmod(stat.S_IRWXU)
    # Only the stand-ins and the basic tools: no real mosquitto, node or python3 to find.
    for tool in ("bash", "sh", "dirname", "basename", "id", "cp", "mkdir", "sed", "cut"):
        (bin_dir / tool).symlink_to(str(shutil.which(tool)))
    record = tmp_path / "record"
    env = {"PATH": str(bin_dir), "RECORD": str(record), "HOME": str(tmp_path)}
    out = subprocess.run(["bash", str(checkout / "deploy" / "setup.sh"), *args], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return record.read_text().splitlines(), out.stdout


def test_the_edge_set_up_runs_apt_pip_and_nothing_else_and_shows_their_progress(tmp_path: Path) -> None:
    calls, output = run_setup(tmp_path, "--edge")
    installs = [c for c in calls if c.startswith("apt-get install")]
    # python3 is there (the stand-in), python3-venv is not.
    assert installs == ["apt-get install -y --no-install-recommends python3-venv"], calls
    # A regular install on a device: no editable import hook in the agent's memory.
    assert "python -m pip install --disable-pip-version-check .[edge]" in calls
    assert not any(c.startswith("npm") for c in calls)
    # apt's and pip's own output reaches the person, under a numbered step line for each.
    assert "Get:1 http://deb.debian.org/debian bookworm/main fake" in output
    assert "Successfully installed vigil-0.1.0" in output
    steps = re.findall(r"==> \[(\d)/(\d)\] ([^\n]*)", output)
    assert [(a, b) for a, b, _ in steps] == [("1", "2"), ("2", "2")], output
    assert "Debian packages for the edge set-up: python3 python3-venv" in steps[0][2]


def test_the_server_set_up_installs_mosquitto_and_runs_npm_with_its_output(tmp_path: Path) -> None:
    calls, output = run_setup(tmp_path)
    install = next(c for c in calls if c.startswith("apt-get install"))
    assert install.split()[4:] == [p for p in plan()["apt"].split() if p not in ("python3", "npm")]
    assert "npm ci --prefix dashboard/web --no-audit --no-fund" in calls
    assert "added 1 package in 1s" in output and "[3/3]" in output


# -- --dev covers what the tests run ---------------------------------------------------------

def executables_the_tests_run() -> dict[str, str]:
    """Every program the tests look up or start by name: shutil.which("x"), ["x", ...] given to
    subprocess, Service.binary = "x", a quoted /usr/bin/x; name -> the first file that does."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Call) and _called(node) == "which" and node.args:
                names += _strings(node.args[0], tree)
            elif isinstance(node, ast.Call) and _called(node) in ("run", "Popen", "check_output", "check_call") \
                    and node.args and isinstance(node.args[0], ast.List) and node.args[0].elts:
                first = node.args[0].elts[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.append(first.value)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "binary"
                                                      for t in node.targets):
                names += _strings(node.value, tree)
            for name in names:
                if name and "/" not in name:
                    found.setdefault(name, rel)
        for name in re.findall(r"[\"']/usr/s?bin/([\w.+-]+)[\"']", text):
            found.setdefault(name, rel)
    return found


def _called(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _strings(node: ast.AST, tree: ast.Module) -> list[str]:
    """A string constant, or the constants a loop variable runs over (``for tool in ("a", "b")``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        for loop in ast.walk(tree):
            if isinstance(loop, ast.For) and isinstance(loop.target, ast.Name) and loop.target.id == node.id \
                    and isinstance(loop.iter, (ast.Tuple, ast.List)):
                return [e.value for e in loop.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def test_the_scan_finds_the_programs_the_fixtures_start() -> None:
    found = executables_the_tests_run()
    # One of each way of naming a program, so a scan that finds nothing cannot pass the next test.
    assert {"mosquitto", "influxd", "victoria-metrics", "mosquitto_passwd", "openssl", "mosquitto_pub",
            "systemd-analyze", "chromium", "sh"} <= set(found), found


@needs_debian
def test_the_dev_set_up_installs_every_program_the_tests_run() -> None:
    provided = commands(plan("--dev"))
    base = apt_closure()
    missing = {name: where for name, where in executables_the_tests_run().items()
               if name not in provided and name not in OPTIONAL and not in_every_debian(name, base)}
    assert not missing, f"the tests run these, and setup.sh --dev installs no package for them: {missing}"


def package_of(path: str) -> str:
    """The Debian package that installed ``path`` ("" if none); dpkg knows some files by their /bin or /lib name."""
    real = os.path.realpath(path)
    for candidate in (path, real, *(p[4:] for p in (path, real) if p.startswith("/usr/"))):
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, timeout=30)
        owners = [line.split(":")[0] for line in out.stdout.splitlines() if not line.startswith("diversion ")]
        if out.returncode == 0 and owners:
            return owners[0]
    return ""


def in_every_debian(command: str, base: set[str]) -> bool:
    """True if ``command`` comes from an Essential package or from apt's dependencies (on this machine)."""
    path = shutil.which(command)
    package = package_of(path) if path else ""
    if not package:
        return False
    essential = subprocess.run(["dpkg-query", "-W", "-f=${Essential}", package], capture_output=True, text=True,
                               timeout=30).stdout
    return essential == "yes" or package in base


def playwright_node() -> Path:
    import playwright

    return Path(playwright.__file__).parent / "driver" / "node"


def apt_closure() -> set[str]:
    """apt and what it depends on: in every Debian, however minimal."""
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                          "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends", "apt"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return {line.strip().split(":")[0] for line in out.splitlines() if line and not line.startswith(" ")}


@needs_debian
def test_the_dev_set_up_installs_the_libraries_playwrights_driver_links() -> None:
    pytest.importorskip("playwright")
    node = playwright_node()
    assert node.is_file(), f"no Playwright driver at {node}"
    ldd = subprocess.run(["ldd", str(node)], capture_output=True, text=True, timeout=30, check=True).stdout
    libs = [m.group(1) for m in re.finditer(r"=> (/\S+)", ldd)]
    assert any("libatomic" in lib for lib in libs), ldd
    base = apt_closure()
    dev = set(plan("--dev")["apt"].split())
    needed = {lib: package_of(lib) for lib in libs}
    assert all(needed.values()), f"libraries that belong to no Debian package: {needed}"
    missing = {lib: pkg for lib, pkg in needed.items() if pkg not in dev and pkg not in base}
    assert not missing, f"Playwright's node needs these, and setup.sh --dev does not install them: {missing}"


def test_the_edge_extra_holds_only_what_the_edge_imports() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        pytest.skip("tomllib is 3.11+")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].lower() for spec in extras["edge"]}
    assert names == {"paho-mqtt", "pyyaml"}, names
