"""edge._deferred: what paho imports but the agent never uses stays unloaded, and loads on first use.

Each test runs in a fresh interpreter: this one has long since imported urllib.request and hashlib.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)


def test_importing_the_agent_leaves_what_paho_never_uses_unloaded() -> None:
    done = run("""
        import sys
        import edge.cli, edge.link
        import paho.mqtt.client as mqtt
        from edge._deferred import PAHO_UNUSED, is_deferred
        assert PAHO_UNUSED == ("urllib.request", "hashlib")
        assert all(is_deferred(name) for name in PAHO_UNUSED), [type(sys.modules[n]) for n in PAHO_UNUSED]
        loaded = [m for m in ("http.client", "email.message", "tempfile", "_hashlib") if m in sys.modules]
        assert not loaded, loaded
        # paho sees the modules it imported, under the names it imported them as.
        assert mqtt.hashlib is sys.modules["hashlib"] and mqtt.urllib.request is sys.modules["urllib.request"]
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_a_deferred_module_loads_on_first_use_and_stays_the_same_object() -> None:
    done = run("""
        import sys
        from edge._deferred import defer, is_deferred  # importing edge defers what paho does not use
        assert not defer("hashlib") and not defer("json")  # already in sys.modules: left alone
        assert is_deferred("hashlib") and is_deferred("urllib.request")
        import hashlib, urllib.request
        before = sys.modules["hashlib"]
        assert is_deferred("hashlib") and hashlib.__name__ == "hashlib" and hashlib.__spec__.name == "hashlib"
        assert hashlib.sha256(b"vigil").hexdigest() == \
            "6b27eba5652b46d31ef75f17784c2709ac019809c47ca538e91c0ab54a80892f"
        assert not is_deferred("hashlib") and sys.modules["hashlib"] is before is hashlib
        assert type(hashlib).__name__ == "module" and "sha1" in dir(hashlib)
        from urllib.request import Request
        assert Request("http://broker.lan/x").host == "broker.lan"
        assert not is_deferred("urllib.request") and "http.client" in sys.modules
        assert urllib.request is sys.modules["urllib.request"]
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_a_deferred_submodule_is_also_its_packages_attribute() -> None:
    done = run("""
        import sys
        from edge._deferred import defer, is_deferred
        assert "email.mime.text" not in sys.modules and defer("email.mime.text")
        import email.mime.text
        assert is_deferred("email.mime.text") and email.mime.text is sys.modules["email.mime.text"]
        assert email.mime.text.MIMEText("hi").get_payload() == "hi"
        assert not is_deferred("email.mime.text")
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_threads_that_touch_a_deferred_module_at_once_all_get_the_loaded_module() -> None:
    done = run("""
        import sys, threading
        from edge._deferred import is_deferred
        import hashlib
        assert is_deferred("hashlib")
        results, start = [], threading.Barrier(8)
        def use():
            start.wait()
            results.append(hashlib.sha1(b"x").hexdigest())
        threads = [threading.Thread(target=use) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert len(set(results)) == 1 and len(results) == 8 and not is_deferred("hashlib"), results
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
