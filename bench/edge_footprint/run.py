"""Footprint of ``vigil edge``: four simulated sensors at 1 Hz for a minute against a local broker.

Prints the agent's peak RSS, its CPU share of one core, and the bytes it wrote per reading
(``wchar``: what it handed to write(2) for its queue and log; ``write_bytes``: what reached the
block layer, where the file system accounts it).

    .venv/bin/python bench/edge_footprint/run.py                 # a private mosquitto, 60 s, sync: batch
    .venv/bin/python bench/edge_footprint/run.py --sync always --seconds 30
    .venv/bin/python bench/edge_footprint/run.py --broker mqtt://127.0.0.1:1883
    .venv/bin/python bench/edge_footprint/run.py --python /usr/bin/python3.9 --pythonpath DIR_WITH_PAHO_AND_YAML
    .venv/bin/python bench/edge_footprint/run.py --root /tmp/before --root . --repeat 3   # A/B, interleaved

The agent runs with the ``Environment=`` settings of deploy/edge/vigil-edge.service (such as
``MALLOC_ARENA_MAX``), as the unit runs it on a device; ``--no-unit-env`` leaves them out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "edge" / "vigil-edge.service"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_field(pid: int, name: str, file: str = "status") -> int:
    with open(f"/proc/{pid}/{file}") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def unit_environment(unit: Path = UNIT) -> dict[str, str]:
    """The ``Environment=NAME=value`` settings of the systemd unit (not EnvironmentFile=)."""
    env = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            for item in line.split("=", 1)[1].split():
                name, _, value = item.strip('"').partition("=")
                env[name] = value
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", help="use this broker instead of a private mosquitto")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sensors", type=int, default=4)
    parser.add_argument("--sync", choices=("always", "batch", "off"), default="batch")
    parser.add_argument("--batch-interval", default="2s")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the agent")
    parser.add_argument("--pythonpath", default="", help="extra PYTHONPATH for --python (e.g. paho and yaml)")
    parser.add_argument("--root", action="append", type=Path,
                        help="a checkout whose agent to run (repeat to compare; default: this one)")
    parser.add_argument("--repeat", type=int, default=1, help="run each root this many times, interleaved")
    parser.add_argument("--no-unit-env", action="store_true",
                        help="leave out the unit's Environment= settings (e.g. MALLOC_ARENA_MAX)")
    args = parser.parse_args()
    roots = [root.resolve() for root in args.root or [ROOT]]
    extra_env = {} if args.no_unit_env else unit_environment()

    work = Path(tempfile.mkdtemp(prefix="vigil-edge-bench-", dir=os.environ.get("BENCH_DIR")))
    broker_proc = None
    try:
        if args.broker:
            url = args.broker
        else:
            port = free_port()
            conf = work / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
            broker_proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
            url = f"mqtt://127.0.0.1:{port}"
            time.sleep(0.5)
        host, port_text = url.split("://", 1)[1].rsplit("@", 1)[-1].split(":")
        received = [0]
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("vigil/readings/bench/#", qos=1)
        sub.on_message = lambda c, u, m: received.__setitem__(0, received[0] + 1)
        sub.connect(host, int(port_text))
        sub.loop_start()
        time.sleep(0.5)
        try:
            for run in range(args.repeat):
                for root in roots:
                    measure(args, root, url, work / f"run-{run}-{roots.index(root)}", received, extra_env)
        finally:
            sub.loop_stop()
            sub.disconnect()
        return 0
    finally:
        if broker_proc is not None:
            broker_proc.terminate()
            broker_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, root: Path, url: str, work: Path, received: list[int],
            extra_env: dict[str, str]) -> None:
    """Run the agent of checkout ``root`` once and print its figures."""
    work.mkdir()
    sensors = "".join(f"  - {{name: t{i}, type: simulated, interval: 1}}\n" for i in range(args.sensors))
    (work / "edge.yaml").write_text(
        f"device: bench\nmqtt: {{url: '{url}'}}\n"
        f"buffer: {{path: '{work}/queue', sync: {args.sync}, batch_interval: {args.batch_interval}}}\n"
        f"sensors:\n{sensors}")
    started = time.monotonic()
    pythonpath = os.pathsep.join(p for p in (args.pythonpath, str(root)) if p)
    agent = subprocess.Popen([args.python, "-m", "vigil.app.cli", "edge", "-c", str(work / "edge.yaml"),
                              "--log-level", "warning"], cwd=root,
                             env={**os.environ, **extra_env, "PYTHONPATH": pythonpath})
    time.sleep(5)  # let imports and the first connect finish before measuring the steady state
    cpu0, wall0 = cpu_seconds(agent.pid), time.monotonic()
    io0 = {k: proc_field(agent.pid, k, "io") for k in ("wchar", "write_bytes")}
    got0 = received[0]
    threading.Event().wait(args.seconds)
    cpu1, wall1 = cpu_seconds(agent.pid), time.monotonic()
    io1 = {k: proc_field(agent.pid, k, "io") for k in ("wchar", "write_bytes")}
    readings = received[0] - got0
    peak_kb = proc_field(agent.pid, "VmHWM")
    rss_kb = proc_field(agent.pid, "VmRSS")
    agent.send_signal(signal.SIGTERM)
    code = agent.wait(15)

    share = 100.0 * (cpu1 - cpu0) / (wall1 - wall0)
    env_text = " ".join(f"{k}={v}" for k, v in extra_env.items()) or "no unit environment"
    print(f"vigil edge footprint: {args.sensors} simulated sensors at 1 Hz, {wall1 - wall0:.0f} s measured "
          f"(after {wall0 - started:.0f} s of start-up), sync={args.sync}, {args.python}, {env_text}, {root}")
    # /proc gives kB of 1024 bytes: these are MiB (24.7 MiB is 25.9 MB).
    print(f"  peak RSS (VmHWM)        {peak_kb / 1024:.1f} MiB   (RSS at the end {rss_kb / 1024:.1f} MiB)")
    print(f"  CPU share of one core   {share:.2f} %   ({cpu1 - cpu0:.2f} s CPU)")
    print(f"  readings delivered      {readings}")
    if readings:
        for key in ("wchar", "write_bytes"):
            print(f"  {key + ' per reading':<24}{(io1[key] - io0[key]) / readings:.0f} bytes")
    print(f"  agent exit code         {code}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
