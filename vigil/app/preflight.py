"""Start-up checks: before a service writes or connects anything, say in one line what is wrong.

Each check returns a :class:`Finding` (or None when all is well): ``fatal`` findings are
mistakes that waiting will not fix (a port in use, credentials refused, TLS, a missing
database); the others are worth a line, and the service keeps trying (a broker or store that
is not up yet, as at boot).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Optional

from vigil.core.settings import MqttSettings, StoreSettings
from vigil.core.urls import BrokerUrl, mask_url

__all__ = ["Finding", "check_broker", "check_port", "check_store"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One line for the user; ``fatal`` when starting anyway cannot help."""

    message: str
    fatal: bool = True

    def __str__(self) -> str:
        return self.message


def check_port(listen: str, what: str, flag: str) -> Optional[Finding]:
    """Can ``HOST:PORT`` be listened on? Names the port and ``flag`` when it cannot."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    port = int(port_text)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return Finding(f"port {port} ({what}) is already in use, perhaps by another Vigil; stop that, "
                               f"or choose another port with {flag} {host}:PORT")
            return Finding(f"cannot listen on {listen} ({what}): {exc.strerror or exc}; choose another address "
                           f"with {flag} HOST:PORT")
    return None


def _broker_finding(b: BrokerUrl, exc: BaseException) -> Finding:
    import aiomqtt

    where = f"the MQTT broker at {mask_url(str(b))}"
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, aiomqtt.MqttCodeError):
        text = str(exc)
        if "authori" in text.lower() or "password" in text.lower():
            who = f"user {b.username!r}" if b.username else "anonymous clients (no username given)"
            return Finding(f"{where} refused {who}: {text}; check mqtt.username and the password "
                           "(VIGIL_MQTT_PASSWORD or mqtt.password), or --broker mqtt://USER:PASS@HOST:PORT")
        return Finding(f"{where} refused the connection: {text}")
    if isinstance(cause, ssl.SSLError) or "SSL" in str(exc):
        hint = ("is it a plain MQTT port? use mqtt:// (usually port 1883)" if "WRONG_VERSION" in str(exc)
                else "check mqtt.ca_file (the CA that signed the broker's certificate) and the host name")
        return Finding(f"TLS with {where} failed ({cause or exc}); {hint}")
    if b.tls and isinstance(cause, ConnectionResetError):
        return Finding(f"TLS with {where} failed: it closed the connection during the handshake; is it a plain "
                       "MQTT port? use mqtt:// there, or the TLS port (usually 8883) with mqtts://")
    if isinstance(cause, ConnectionRefusedError):
        return Finding(f"no MQTT broker answers at {b.host}:{b.port} (connection refused); start it, or name "
                       "another with --broker mqtt://HOST:PORT; trying again meanwhile", fatal=False)
    if isinstance(cause, socket.gaierror):
        return Finding(f"cannot resolve the MQTT broker's host {b.host!r} ({cause.strerror}); check --broker")
    if isinstance(cause, TimeoutError) or "timed out" in str(exc):
        hint = ("is it a TLS port? use mqtts:// (usually port 8883)" if not b.tls
                else "is this an MQTT-over-TLS port?")
        return Finding(f"{where} did not answer the MQTT handshake in time; {hint}; trying again meanwhile",
                       fatal=False)
    return Finding(f"cannot reach {where}: {exc}; check --broker; trying again meanwhile", fatal=False)


async def check_broker(settings: MqttSettings, client_id: str, *, persistent: bool,
                       timeout: float = 10.0) -> Optional[Finding]:
    """Connect once as the service will and disconnect; what went wrong, in one line.

    Several brokers (failover): each in turn until one lets us in; when none does, one line that names
    each and why (fatal only when every one is).

    ``persistent``: the service's own session is resumed, not cleared, and nothing it holds is
    acknowledged here (manual acknowledgement), so a message waiting in it is delivered again
    to the service."""
    findings: list[Finding] = []
    for broker in settings.brokers():
        finding = await _check_one(settings, broker, client_id, persistent, timeout)
        if finding is None:
            return None
        findings.append(finding)
    if len(findings) == 1:
        return findings[0]
    return Finding(f"none of the {len(findings)} MQTT brokers lets us in: "
                   + "; ".join(f"({i}) {f}" for i, f in enumerate(findings, 1)), fatal=all(f.fatal for f in findings))


async def _check_one(settings: MqttSettings, broker: BrokerUrl, client_id: str, persistent: bool,
                     timeout: float) -> Optional[Finding]:
    import aiomqtt

    from vigil.core.mqtt import build_client, enable_manual_ack

    client = build_client(settings, client_id, persistent=persistent, broker=broker)
    if persistent:
        enable_manual_ack(client)
    try:
        async with asyncio.timeout(timeout), client:
            return None
    except TimeoutError:
        return _broker_finding(broker, aiomqtt.MqttError("timed out"))
    except aiomqtt.MqttError as exc:
        return _broker_finding(broker, exc)
    except (OSError, ValueError) as exc:
        return Finding(f"cannot use the MQTT settings: {exc}; check --broker and mqtt.ca_file/cert_file")


def check_store(settings: StoreSettings) -> Optional[Finding]:
    """Open the store and read from it once; what went wrong, in one line."""
    from vigil.core.stores import StoreError, StoreUnavailable, open_store

    url = settings.store_url()
    shown = mask_url(settings.url)
    if url.kind == "sqlite":
        from pathlib import Path

        folder = Path(url.path).parent
        if folder.exists() and not folder.is_dir():
            return Finding(f"the store {shown}: {folder} is not a folder; choose another --store sqlite:///PATH")
        return None  # made on first use
    try:
        store = open_store(url, retention=settings.retention)
    except (StoreError, ValueError, OSError) as exc:
        return Finding(f"cannot open the store {shown}: {exc}; check --store")
    try:
        store.ping()
        store.latest(metric="temperature", device="vigil-start-check")
    except StoreUnavailable as exc:
        return Finding(f"the store {shown} does not answer ({_reason(exc)}); start it, or check --store; "
                       "readings wait on disk meanwhile", fatal=False)
    except StoreError as exc:
        reason = _reason(exc)
        hint = "check --store"
        if "not found" in reason:
            user = f"-u {url.username} " if url.username else ""
            hint = (f"to create it: curl {user}-XPOST {url.http_base}/query --data-urlencode "
                    f"'q=CREATE DATABASE \"{url.database}\"'" if url.kind == "influxdb1"
                    else "create the bucket (influx bucket create), or name another in --store")
        elif "401" in reason or "403" in reason or "auth" in reason.lower():
            hint = ("check the user and password (VIGIL_INFLUXDB_PASSWORD) or the token (VIGIL_INFLUXDB_TOKEN)")
        return Finding(f"the store {shown} refused: {reason}; {hint}")
    finally:
        store.close()
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    store = getattr(exc, "store", "")
    return text[len(store) + 2:] if store and text.startswith(f"{store}: ") else text
