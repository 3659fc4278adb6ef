"""A number from the output of a command run with a timeout (a vendor tool, a script)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from vigil.core.clock import Clock

from .._reader import Reader
from ..errors import SensorError
from .base import Sensor, parse_number
from .file import parse_pattern

__all__ = ["CommandSensor", "Options", "create", "parse_options"]

DEFAULT_UNIT = ""
DEFAULT_METRIC = "value"
MAX_OUTPUT = 65536


@dataclass(frozen=True)
class Options:
    """The command (argv), its timeout, and how to find the number in what it prints."""

    argv: tuple[str, ...]
    timeout: float = 10.0
    scale: float = 1.0
    pattern: Optional[re.Pattern[str]] = None


def parse_options(r: Reader) -> Optional[Options]:
    """``command`` (a string split like a shell would, or a list), ``timeout``, ``scale``, ``pattern``."""
    import shlex  # here, not at the top: a device without command sensors saves the memory

    raw = r.raw("command")
    argv: tuple[str, ...] = ()
    if isinstance(raw, str):
        try:
            argv = tuple(shlex.split(raw))
        except ValueError as exc:
            r.error("command", f"cannot split the command line: {exc}")
    elif isinstance(raw, list) and all(isinstance(a, (str, int, float)) for a in raw):
        argv = tuple(str(a) for a in raw)
    elif raw is not None:
        r.error("command", "expected a command line string or a list of arguments")
        return None
    if not argv and raw is None:
        r.error("command", "is required, e.g. command: vcgencmd measure_temp")
    elif not argv:
        r.error("command", "is empty")
    timeout = r.duration("timeout", 10.0)
    scale = r.number("scale", 1.0)
    pattern = parse_pattern(r)
    if not argv:
        return None
    return Options(argv, timeout or 10.0, 1.0 if scale is None else scale, pattern)


class CommandSensor(Sensor):
    kind = "command"

    def __init__(self, name: str, options: Options) -> None:
        super().__init__(name)
        self.options = options

    def describe(self) -> str:
        import shlex

        return f"command {shlex.join(self.options.argv)}"

    def read(self) -> float:
        import subprocess  # here, not at the top: a device without command sensors saves the memory

        argv = self.options.argv
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self.options.timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SensorError(self.name, "timeout", f"{argv[0]} did not finish within "
                              f"{self.options.timeout:g}s (killed)") from exc
        except OSError as exc:
            raise SensorError(self.name, "exec", f"cannot run {argv[0]}: {exc.strerror}") from exc
        if done.returncode != 0:
            err = done.stderr[:200].decode("utf-8", "replace").strip()
            raise SensorError(self.name, "exit", f"{argv[0]} exited with {done.returncode}: {err}")
        text = done.stdout[:MAX_OUTPUT].decode("utf-8", "replace")
        return parse_number(self.name, text, self.options.pattern, self.options.scale)


def create(name: str, options: Options, clock: Clock) -> Sensor:
    return CommandSensor(name, options)
