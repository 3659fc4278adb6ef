"""The backup and restore commands of docs/backup.md, run on live files and a real influxd."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alerting.state import AlertRecord, StateDB
from alerting.transition import AlertState
from tests.support.services import Influxd, wait_until
from vigil.core.event import Event, SeriesKey
from vigil.core.stores import open_store

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "backup.md"


def doc_python_backup() -> str:
    """The Python one-liner docs/backup.md gives for a consistent SQLite copy."""
    match = re.search(r"python -c '([^']+)'", DOC.read_text())
    assert match, "docs/backup.md no longer shows the VACUUM INTO one-liner"
    return match.group(1)


def backup_sqlite(source: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-c", doc_python_backup(), str(source), str(target)], check=True,
                   capture_output=True, timeout=60)


def events(device: str, n: int, t0: float) -> list[Event]:
    return [Event(device=device, sensor="t0", metric="temperature", value=float(i), ts=t0 + i, unit="°C",
                  seq=i, labels=(), source="vigil", received=t0 + i) for i in range(n)]


def test_alert_state_backup_taken_while_the_engine_writes_restores_every_alert(tmp_path: Path) -> None:
    live = tmp_path / "alerts.db"
    db = StateDB(live)  # stays open, as the running engine keeps it
    firing = AlertRecord("freezer-warm", "freezer/t0/temperature", state=AlertState.FIRING,
                         underlying=AlertState.FIRING, state_since=1000.0, pending_since=900.0, firing_since=1000.0,
                         value=9.5)
    pending = AlertRecord("greenhouse-cold", "greenhouse/t0/temperature", state=AlertState.PENDING,
                          underlying=AlertState.PENDING, state_since=1100.0, pending_since=1100.0, value=1.0)
    db.save_alerts([firing, pending])
    backup = tmp_path / "backup" / "alerts-2026-11-27.db"
    backup.parent.mkdir()
    backup_sqlite(live, backup)
    later = AlertRecord("server-hot", "rack/t0/temperature", state=AlertState.FIRING, underlying=AlertState.FIRING,
                        state_since=1200.0, firing_since=1200.0, value=41.0)
    db.save_alerts([later])  # written after the backup: not in it
    db.close()

    # Lose the file (and its WAL), then restore as the doc says.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, live)
    restored = StateDB(live)
    try:
        by_rule = {r.rule: r for r in restored.load_alerts()}
    finally:
        restored.close()
    assert set(by_rule) == {"freezer-warm", "greenhouse-cold"}
    assert (by_rule["freezer-warm"].state, by_rule["freezer-warm"].firing_since) == (AlertState.FIRING, 1000.0)
    assert (by_rule["greenhouse-cold"].state, by_rule["greenhouse-cold"].pending_since) == (AlertState.PENDING, 1100.0)


def test_sqlite_store_backup_while_open_holds_every_reading(tmp_path: Path) -> None:
    t0 = time.time() - 600
    store = open_store(f"sqlite:///{tmp_path}/vigil.db")
    try:
        store.write(events("freezer", 50, t0))
        backup = tmp_path / "vigil-2026-11-27.db"
        backup_sqlite(tmp_path / "vigil.db", backup)
        with pytest.raises(subprocess.CalledProcessError):
            backup_sqlite(tmp_path / "vigil.db", backup)  # VACUUM INTO never overwrites a file
    finally:
        store.close()
    copy = open_store(f"sqlite:///{backup}")
    try:
        assert [(e.device, e.value) for e in copy.latest("temperature")] == [("freezer", 49.0)]
        points = copy.query(SeriesKey("temperature", "freezer", "t0"), t0 - 1, t0 + 100)
        assert [p.value for p in points] == [float(i) for i in range(50)]
    finally:
        copy.close()


@pytest.mark.skipif(shutil.which("influxd") is None, reason="influxd is not installed here")
def test_influxdb1_portable_backup_and_restore_after_a_loss(private_influxd: Influxd, tmp_path: Path) -> None:
    # docs/production.md creates the database with a retention policy named keep.
    private_influxd.query("CREATE DATABASE vigil WITH DURATION 400d NAME keep")
    t0 = time.time() - 600
    store = open_store(private_influxd.url("vigil"))
    try:
        store.write(events("freezer", 20, t0) + events("greenhouse", 20, t0))
    finally:
        store.close()
    rpc = f"127.0.0.1:{private_influxd.rpc_port}"
    backup_dir = tmp_path / "influxdb" / "2026-11-27"
    subprocess.run(["influxd", "backup", "-portable", "-database", "vigil", "-host", rpc, str(backup_dir)],
                   check=True, capture_output=True, timeout=120)

    private_influxd.query("DROP DATABASE vigil")
    assert _count(private_influxd, "vigil") == 0
    subprocess.run(["influxd", "restore", "-portable", "-db", "vigil", "-host", rpc, str(backup_dir)],
                   check=True, capture_output=True, timeout=120)
    assert wait_until(lambda: _count(private_influxd, "vigil") == 40, timeout=30)

    # Beside a live database: restore under another name and copy back with the doc's query.
    private_influxd.query("DELETE FROM temperature WHERE device = 'greenhouse'", db="vigil")
    assert _count(private_influxd, "vigil") == 20
    subprocess.run(["influxd", "restore", "-portable", "-db", "vigil", "-newdb", "vigil_restored", "-host", rpc,
                    str(backup_dir)], check=True, capture_output=True, timeout=120)
    copy_back = re.search(r"influx -database vigil_restored -execute '([^']+)'", DOC.read_text())
    assert copy_back, "docs/backup.md no longer shows the SELECT INTO query"
    # As the doc says: the restored shards take a moment to open; copy once they answer.
    assert wait_until(lambda: _count(private_influxd, "vigil_restored") == 40, timeout=30)
    result = private_influxd.query(copy_back.group(1), db="vigil_restored")["results"][0]
    assert result["series"][0]["values"][0][1] == 40, result
    assert _count(private_influxd, "vigil") == 40
    tags = private_influxd.query("SHOW TAG VALUES FROM temperature WITH KEY = device", db="vigil")
    assert sorted(v[1] for v in tags["results"][0]["series"][0]["values"]) == ["freezer", "greenhouse"]


def _count(server: Influxd, db: str) -> int:
    result = server.query("SELECT count(value) FROM temperature", db=db)["results"][0]
    if "series" not in result:  # no data, or shards still opening after a restore
        return 0
    return int(result["series"][0]["values"][0][1])
