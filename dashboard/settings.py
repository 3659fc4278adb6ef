"""The ``dashboard:`` section of vigil.yaml: where it listens, who may log in, which keys may ingest."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator

from vigil.core.configtypes import STRICT, Duration, HostPort
from vigil.core.sitetime import check_zone, server_zone_name

__all__ = ["ROLES", "DashboardSettings", "FleetSettings", "HmacKey", "Role", "TokenEntry", "UserEntry"]

# read-only: look at everything; ingest: only POST readings; admin: also acknowledge, silence, reload.
Role = Literal["read-only", "ingest", "admin"]
ROLES: tuple[str, ...] = ("read-only", "ingest", "admin")


class UserEntry(BaseModel):
    """A person who logs in with a password; only its hash is kept (``vigil dashboard --hash-password``)."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=64)
    password_hash: str
    role: Role = "read-only"
    # The file this hash was read from, when not vigil.yaml (the generated admin's): a login that
    # replaces an older hash writes the new one there.
    _hash_file: Optional[Path] = PrivateAttr(default=None)

    @field_validator("password_hash")
    @classmethod
    def _verifiable(cls, v: str) -> str:
        """Only a hash a login can verify: argon2 or older scrypt within the memory a login may use."""
        from .passwords import check_hash_format

        check_hash_format(v)
        return v

    @property
    def hash_file(self) -> Optional[Path]:
        return self._hash_file

    def kept_in(self, path: Path) -> UserEntry:
        """This user, with its hash kept in ``path`` instead of vigil.yaml."""
        copy = self.model_copy()
        copy._hash_file = path
        return copy


class TokenEntry(BaseModel):
    """An API token for scripts and webhooks: ``Authorization: Bearer <token>``."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=64)
    token: SecretStr
    role: Role = "ingest"

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("a token must be at least 16 characters long")
        return v


class HmacKey(BaseModel):
    """A shared secret that signs ingest requests (``X-Vigil-Key``, ``X-Vigil-Timestamp``, ``X-Vigil-Signature``)."""

    model_config = STRICT

    id: str = Field(min_length=1, max_length=64)
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("an HMAC secret must be at least 16 characters long")
        return v


class FleetSettings(BaseModel):
    """When the Fleet page (``/fleet``) counts a device at risk."""

    model_config = STRICT

    battery_low: float = Field(20.0, ge=0, le=100, description="battery below this (%) is low.")
    battery_days: Duration = Field(7 * 86400.0, description="the time over which a battery's trend is judged.")
    battery_fall_per_day: float = Field(0.5, gt=0, le=100, description="a battery falling at least this fast "
                                        "(% a day, a robust slope) is falling.")
    battery_days_left: float = Field(30.0, gt=0, le=3650, description="a falling battery above battery_low is "
                                     "at risk when it will be empty within this many days.")
    rssi_weak: float = Field(-80.0, ge=-200, le=0, description="an rssi below this (dBm) is a weak signal.")
    linkquality_weak: float = Field(30.0, ge=0, le=255, description="a zigbee linkquality below this is weak.")
    reboots: int = Field(3, ge=1, le=10_000, description="this many reboots (uptime going down) within a day "
                         "are frequent.")
    stale_after: Duration = Field(2 * 3600.0, description="a device with no reading for longer is stale.")
    cache: Duration = Field(30.0, description="how long the page's answer is kept (0: computed each time).")

    @model_validator(mode="after")
    def _spans(self) -> FleetSettings:
        if self.battery_days < 86400:
            raise ValueError("battery_days must be at least 1d (a trend needs days of readings)")
        if self.stale_after <= 0 or self.cache < 0:
            raise ValueError("stale_after must be longer than 0s and cache at least 0s")
        return self


class DashboardSettings(BaseModel):
    model_config = STRICT

    listen: HostPort = "127.0.0.1:8080"
    client_id: str = "vigil-dashboard"
    # The address people use (https://... behind a TLS proxy makes cookies Secure).
    public_url: Optional[str] = None
    users: list[UserEntry] = Field(default_factory=list)
    tokens: list[TokenEntry] = Field(default_factory=list)
    hmac_keys: list[HmacKey] = Field(default_factory=list)
    # Signs session cookies; without one a random secret is made at start (sessions end on restart).
    session_secret: Optional[SecretStr] = None
    session_lifetime: Duration = 12 * 3600.0
    # The rules file or folder the Rules page shows and reloads; default: alerting.rules.
    rules: Optional[str] = None
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1024 * 1024)
    max_batch: int = Field(10_000, ge=1, le=1_000_000)
    # How far a signed request's timestamp may be from the server's clock.
    signature_tolerance: Duration = 300.0
    # Wrong passwords allowed per login_window, for each client address and for each user name.
    login_attempts: int = Field(5, ge=1, le=1000)
    login_window: Duration = 60.0
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, e.g. 127.0.0.1/32);
    # behind one, every login would otherwise come from the proxy's address and share one limit.
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(default_factory=list)
    # Alert changes shown on the Alerts page; kept in <data_dir>/dashboard-alerts.db for this long.
    alert_history: int = Field(1000, ge=10, le=100_000)
    alert_history_days: Duration = 90 * 86400.0
    # The site's IANA time zone (e.g. Europe/Berlin) for every time the dashboard and notifications show;
    # default: the server's. The browser's locale decides the order of day, month and year.
    timezone: Optional[str] = None
    # A tile says "stale" when its newest reading is older than this (a matching nodata rule's
    # `after` wins): the sensor has gone quiet although the device may still say it is online.
    stale_after: Duration = 900.0
    # The Fleet page's thresholds: low battery, weak signal, frequent reboots, silent devices.
    fleet: FleetSettings = Field(default_factory=FleetSettings)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, such as https://vigil.example.org")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else check_zone(v)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, v: object) -> object:
        if not isinstance(v, list):
            raise ValueError("expected a list of addresses or networks, such as [127.0.0.1/32, \"::1\"]")
        out = []
        for item in v:
            try:
                out.append(ip_network(str(item), strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (such as 127.0.0.1 or 10.0.0.0/8)") \
                    from None
        return out

    @model_validator(mode="after")
    def _unique_names(self) -> DashboardSettings:
        for what, names in (("users", [u.name for u in self.users]), ("tokens", [t.name for t in self.tokens]),
                            ("hmac_keys", [k.id for k in self.hmac_keys])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what}: the name {dup[0]!r} is given more than once")
        return self

    @property
    def zone_name(self) -> str:
        """The IANA name of the site's time zone (the setting, or the server's)."""
        return self.timezone or server_zone_name()

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))
