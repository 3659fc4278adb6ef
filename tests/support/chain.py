"""The whole chain as production runs it: `vigil edge` agents, Mosquitto, `vigil bridge`, influxd,
`vigil alerting` and a local HTTP receiver for its apprise json:// notifications.

The process wrappers are the parts' own (tests/support); this module wires them together and adds what a
fault test needs on top: a receiver that can go down, and the agents' own account of what they produced
(their queue files).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import httpx
import yaml

from tests.support.alerting import EngineProcess, Receiver
from tests.support.bridge import BridgeProcess
from tests.support.edge import Agents
from tests.support.edge import Recorder as PersistentRecorder
from tests.support.procs import VIGIL, VigilProcess
from tests.support.services import Influxd, Mosquitto, free_port, wait_until

__all__ = ["INGEST_TOKEN", "READER_TOKEN", "Chain", "Dashboard", "Hook", "PersistentRecorder", "check_counts",
           "events_advanced", "firing", "influx_counts", "latest", "rules_yaml", "sleep", "wait_connected"]


class Hook(Receiver):
    """The notification receiver (apprise json://), which can be taken down and brought back on its port."""

    def __init__(self) -> None:
        super().__init__()
        self.thread.start()

    def down(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def up(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.server.RequestHandlerClass)
        self.thread = threading.Thread(target=self.server.serve_forever, name="e2e-receiver", daemon=True)
        self.thread.start()

    def titles(self) -> Counter[str]:
        return Counter(str(b.get("title", "")) for b in list(self.bodies))


INGEST_TOKEN = "e2e-ingest-token-0123456789abcdef"
READER_TOKEN = "e2e-reader-token-0123456789abcdef"


class Dashboard:
    """`vigil dashboard` as a process, with an ingest token and a read-only token."""

    def __init__(self, workdir: Path, broker: Mosquitto, store_url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.base = f"http://127.0.0.1:{free_port()}"
        (workdir / "dashboard.yaml").write_text(yaml.safe_dump({
            "data_dir": str(workdir / "dashboard-data"),
            "mqtt": {"url": broker.url},
            "store": {"url": store_url},
            "dashboard": {"listen": self.base.removeprefix("http://"),
                          "tokens": [{"name": "hook", "role": "ingest", "token": INGEST_TOKEN},
                                     {"name": "reader", "role": "read-only", "token": READER_TOKEN}]},
        }))
        self.proc = VigilProcess([VIGIL, "dashboard", "-c", str(workdir / "dashboard.yaml")],
                                 workdir / "dashboard.log", cwd=workdir)
        assert wait_until(self._healthy, 30), self.proc.output()[-2000:]

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.base}{path}", params=params, timeout=15,
                      headers={"Authorization": f"Bearer {READER_TOKEN}"})
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        return r.json()

    def firing(self) -> set[str]:
        return {a["series"] for a in self.get("/api/v1/alerts")["current"] if a["state"] == "firing"}

    def stop(self) -> None:
        self.proc.stop()


def rules_yaml(receiver_url: str, threshold: float = 30.0) -> str:
    """One rule: a temperature above ``threshold`` fires, and is notified once per series."""
    return f"""\
receivers:
  ops: ["{receiver_url}"]
grouping: {{group_by: [rule, series], group_wait: 0s, group_interval: 1s}}
delivery: {{retry_initial: 200ms, retry_max: 1s}}
rules:
  - name: too-warm
    match: {{metric: temperature}}
    above: {threshold}
    clear_below: {threshold - 5}
    severity: warning
    notify: ops
    message: "{{{{ device }}}} is at {{{{ value | round(1) }}}} °C"
"""


def firing(device: str, rule: str = "too-warm") -> str:
    return f"[FIRING warning] {rule} {device}/t0/temperature"


def influx_counts(influxd: Influxd, db: str, measurement: str = "temperature") -> dict[str, int]:
    """Stored points per device (one sensor each)."""
    res = influxd.query(f'SELECT count("value") FROM "{measurement}" GROUP BY "device"', db=db)
    return {s["tags"]["device"]: int(s["values"][0][1]) for s in res["results"][0].get("series", [])}


def wait_connected(engine: EngineProcess, times: int = 1, timeout: float = 30.0) -> None:
    assert wait_until(lambda: engine.output().count("connected to the broker") >= times, timeout), \
        engine.output()[-3000:]


class Chain:
    """Edge agents -> Mosquitto -> bridge -> influxd, and the rule engine -> the hook, all real processes."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, influxd: Influxd, db: str, hook: Hook,
                 bridge_extra: Optional[list[str]] = None, rules: Optional[str] = None,
                 bridges: int = 1, engines: int = 1) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.influxd = influxd
        self.db = db
        self.hook = hook
        shared = ["--shared-group", "bridges"] if bridges > 1 else []
        self.bridges = [BridgeProcess(broker, influxd.url(db), tmp_path / f"bridge-{i}", client_id=f"vigil-bridge-{i}",
                                      extra=[*shared, *(bridge_extra or [])]) for i in range(bridges)]
        self.bridge = self.bridges[0]
        rules_file = tmp_path / "rules.yaml"
        rules_file.write_text(rules if rules is not None else rules_yaml(hook.url))
        self.engines = []
        for i in range(engines):
            partition = ["--partition", f"{i}/{engines}"] if engines > 1 else []
            self.engines.append(EngineProcess(
                ["alerting", "--broker", broker.url, "--rules", str(rules_file), "--state",
                 str(tmp_path / f"alerts-{i}.db"), "--client-id", f"vigil-alerting-{i}", *partition],
                tmp_path / f"engine-{i}.log"))
        self.engine = self.engines[0]
        (tmp_path / "edge").mkdir(exist_ok=True)
        self.agents = Agents(tmp_path / "edge")
        self.edges: dict[str, dict[str, Any]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for bridge in self.bridges:
            bridge.start()
        for engine in self.engines:
            engine.start()
        for engine in self.engines:
            wait_connected(engine)

    def edge(self, device: str, base: float, interval: float = 0.2) -> None:
        """Start `vigil edge` for ``device`` with one simulated sensor t0 near ``base`` °C."""
        config = {
            "device": device, "interval": interval,
            "mqtt": {"url": self.broker.url, "reconnect_min": "0.2s", "reconnect_max": "2s"},
            "buffer": {"path": str(self.tmp_path / "edge" / device)},
            "sensors": [{"name": "t0", "type": "simulated", "base": base, "amplitude": 0.5, "noise": 0.05}],
        }
        self.edges[device] = config
        self.procs[device] = self.agents.spawn(config)

    def kill_edge(self, device: str) -> None:
        proc = self.procs[device]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def restart_edge(self, device: str) -> None:
        self.procs[device] = self.agents.spawn(self.edges[device])

    def stop_edges(self) -> None:
        """SIGTERM, as systemd stops the agent: it sends what is queued and says offline."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            proc.wait(20)

    def produced(self, device: str) -> tuple[int, list[int]]:
        """What the agent says it produced: (readings numbered 0..last, so last + 1; seqs still queued)."""
        with sqlite3.connect(self.tmp_path / "edge" / device / "queue.db") as conn:
            row = conn.execute("SELECT last FROM seq WHERE sensor='t0'").fetchone()
            queued = [int(r[0]) for r in conn.execute("SELECT seq FROM readings WHERE sensor='t0'")]
        conn.close()
        return (int(row[0]) + 1 if row else 0), queued

    def stored(self) -> dict[str, int]:
        return influx_counts(self.influxd, self.db)

    def close(self) -> None:
        self.agents.close()
        for engine in self.engines:
            engine.stop()
        for bridge in self.bridges:
            bridge.stop()


def events_advanced(recorder: PersistentRecorder, seqs: Any, devices: list[str], past: dict[str, int]) -> bool:
    seen = seqs(recorder)
    return all(max((s for d, s in seen if d == dev), default=-1) > past.get(dev, -1) + 10 for dev in devices)


def latest(recorder: PersistentRecorder, seqs: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d, s in seqs(recorder):
        out[d] = max(out.get(d, -1), s)
    return out


def check_counts(chain: Chain, recorder: PersistentRecorder, seqs: Any, devices: list[str],
                  alerts: list[str], others: Optional[dict[str, int]] = None) -> None:
    """Agents stop cleanly; then every reading they numbered is stored once and each alert notified once.

    ``others``: points expected of devices that are not agents (a load generator).
    """
    # Let a backlog from an outage drain first: a clean stop sends what is queued for only 2 s.
    assert wait_until(lambda: all(latest(recorder, seqs).get(d, -1) >= chain.produced(d)[0] - 6 for d in devices),
                      90), (latest(recorder, seqs), {d: chain.produced(d)[0] for d in devices})
    chain.stop_edges()
    produced = {d: chain.produced(d) for d in devices}
    assert all(not queued for _, queued in produced.values()), produced
    expected = {d: n for d, (n, _) in produced.items()}
    expected.update(others or {})
    assert wait_until(lambda: chain.stored() == expected, 60), (chain.stored(), expected)
    sleep(2)  # a late duplicate or a second notification would arrive now
    assert chain.stored() == expected
    seen = seqs(recorder)
    for d, n in expected.items():
        assert {s for dev, s in seen if dev == d} == set(range(n)), f"{d}: a seq is missing from the events"
    assert chain.hook.titles() == Counter(firing(d) for d in alerts), chain.hook.bodies


def sleep(seconds: float) -> None:
    """An outage's length: the fault tests hold a fault for real seconds, as the issue asks."""
    time.sleep(seconds)
