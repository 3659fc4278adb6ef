"""``vigil init [DIR]``: a starting point to edit: vigil.yaml, rules/ with a test, edge.yaml.

Nothing that exists is overwritten: a file already there is kept, and the command says so.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Optional

from vigil.core.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

DESCRIPTION = """\
Write a commented starting point into DIR (default: the current folder): vigil.yaml (the
settings of vigil up), rules/rules.yaml (example alert rules and a receiver for your phone),
rules/rules_test.yaml (unit tests for them) and edge.yaml (the agent's settings for a Raspberry
Pi). A file that already exists is kept as it is."""

EPILOG = """\
examples:
  vigil init my-site && cd my-site && vigil up -c vigil.yaml
  vigil init --notify 'ntfy://ntfy.sh/my-secret-topic?priority=high'   your phone as the receiver
"""

# What `vigil init` writes: target path -> template in vigil/app/demo/init/
FILES = {
    "vigil.yaml": "vigil.yaml",
    "rules/rules.yaml": "rules.yaml",
    "rules/rules_test.yaml": "rules_test.yaml",
    "edge.yaml": "edge.yaml",
}

# Without --notify: the phone's ntfy topic comes from the environment, so no secret is in the file.
PHONE_EXAMPLE = "ntfy://ntfy.sh/${VIGIL_NOTIFY_NTFY_TOPIC}?priority=high"


def template(name: str) -> str:
    """A template of vigil/app/demo/init/."""
    return resources.files("vigil.app").joinpath(f"demo/init/{name}").read_text("utf-8")


def receiver_line(name: str, urls: list[str]) -> str:
    """``  name: ["url", ...]``: flow style, quoted, so ${VAR} and ?query stay as written."""
    import json

    return f"  {name}: [{', '.join(json.dumps(u) for u in urls)}]"


def rules_text(receivers: str, *, notify: bool = True) -> str:
    """The example rules with ``receivers`` (a YAML block or a comment) in place of the marker;
    ``notify=False`` leaves out the rules' ``notify: [phone]`` (for rules that a route sends on)."""
    text = template("rules.yaml").replace("@RECEIVERS@", receivers)
    return text if notify else text.replace("    notify: [phone]\n", "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", nargs="?", default=".", help="where to write (default: here)")
    parser.add_argument("--notify", metavar="APPRISE_URL", action="append", default=[],
                        help="the phone receiver's URL (default: ntfy.sh, the topic from $VIGIL_NOTIFY_NTFY_TOPIC)")


def write_starting_point(folder: Path, notify: Optional[list[str]] = None) -> tuple[list[Path], list[Path]]:
    """Write the files that are missing; (written, kept)."""
    written: list[Path] = []
    kept: list[Path] = []
    for target, name in FILES.items():
        path = folder / target
        if path.exists():
            kept.append(path)
            continue
        text = rules_text("receivers:\n" + receiver_line("phone", notify or [PHONE_EXAMPLE])) if name == "rules.yaml" \
            else template(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as f:  # "x": never replace a file made meanwhile
            f.write(text)
        written.append(path)
    return written, kept


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        print(f"vigil init: {folder} is a file; name a folder (it is made if missing)", file=sys.stderr)
        return EXIT_USAGE
    try:
        written, kept = write_starting_point(folder, args.notify)
    except OSError as exc:
        print(f"vigil init: cannot write into {folder}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    for path in written:
        print(f"wrote {path}")
    for path in kept:
        print(f"kept  {path} (it exists; nothing in it was changed)")
    env = "" if args.notify else "VIGIL_NOTIFY_NTFY_TOPIC=your-secret-topic "
    print("next:" + ("" if folder.resolve() == Path.cwd().resolve() else f" cd {args.dir}, then") + "\n"
          "  vigil rules test rules/    the example rules pass their tests\n"
          f"  {env}vigil notify test rules/    a test message to your phone\n"
          f"  {env}vigil up -c vigil.yaml    run everything; it prints the command for a Pi")
    return EXIT_OK
