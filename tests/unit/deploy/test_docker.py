"""deploy/docker/: the Dockerfile, the compose file and the files they mount.

No Docker engine runs on these machines, so nothing is built or started here. What is checked:
the compose file parses (with `docker compose config` when the plugin is installed), it wires
the five containers as docs/production.md says, and the Dockerfile installs Vigil with the
README's own commands.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "deploy" / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
README = ROOT / "README.md"
SECRETS = ["vigil.env", "bridge.env", "alerting.env", "dashboard.env", "influxdb-password", "influxdb-token",
           "mosquitto-passwd"]
VIGIL_SERVICES = ["bridge", "alerting", "dashboard"]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _compose_cli() -> Optional[list[str]]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


COMPOSE_CLI = _compose_cli()


@pytest.mark.skipif(COMPOSE_CLI is None,
                    reason="neither docker's compose plugin nor docker-compose is installed here")
def test_compose_config_parses_with_docker_compose(tmp_path: Path) -> None:
    assert COMPOSE_CLI is not None
    deploy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", deploy, ignore=shutil.ignore_patterns("secrets", "rules"))
    # The one-time set-up of docs/production.md makes these; empty ones are enough to parse.
    (deploy / "docker" / "secrets" / "certs").mkdir(parents=True)
    (deploy / "docker" / "rules").mkdir()
    for name in SECRETS:
        (deploy / "docker" / "secrets" / name).touch()
    compose_file = deploy / "docker" / "compose.yaml"
    if COMPOSE_CLI == ["docker-compose"]:
        # Compose v1 predates the top-level `name:` key of the Compose Specification.
        compose_file.write_text(re.sub(r"^name: .*\n", "", compose_file.read_text(), flags=re.MULTILINE))
    out = subprocess.run([*COMPOSE_CLI, "-f", str(compose_file), "config"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert set(resolved["services"]) == {"mosquitto", "influxdb", *VIGIL_SERVICES}
    assert any("127.0.0.1:8080:8080" in str(p) or p.get("host_ip") == "127.0.0.1"
               for p in resolved["services"]["dashboard"]["ports"])


def test_compose_runs_five_containers_each_vigil_service_as_its_own_mqtt_user() -> None:
    services = compose()["services"]
    assert set(services) == {"mosquitto", "influxdb", *VIGIL_SERVICES}
    assert services["influxdb"]["image"].startswith("influxdb:2")
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    acl_users = re.findall(r"^user (\S+)$", (ROOT / "deploy/mosquitto/vigil.acl").read_text(), flags=re.MULTILINE)
    for name in VIGIL_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert service["command"][:3] == [name, "-c", "/etc/vigil/vigil.yaml"]
        broker = service["command"][service["command"].index("--broker") + 1]
        assert broker == f"mqtt://vigil-{name}@mosquitto:1883"
        assert f"vigil-{name}" in acl_users
        assert service["env_file"] == ["./secrets/vigil.env", f"./secrets/{name}.env"]
    # Only TLS MQTT and the loopback dashboard are published on the host.
    published = {name: s.get("ports", []) for name, s in services.items() if s.get("ports")}
    assert published == {"mosquitto": ["8883:8883"], "dashboard": ["127.0.0.1:8080:8080"]}


def test_compose_mounts_files_that_exist_in_the_repository() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith(".") and "/secrets" not in source and not source.endswith("/rules"):
                assert (DOCKER / source).exists(), f"{name} mounts {source}, which does not exist"


def test_compose_vigil_yaml_passes_vigil_config_check() -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "vigil"), "config", "check", str(DOCKER / "vigil.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "listen: 0.0.0.0:8080" in out.stdout


def _settings(path: Path) -> list[str]:
    """The lines that are settings, without comments, listeners and file paths."""
    keep = []
    for line in path.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] in {"listener", "certfile", "keyfile", "password_file", "acl_file", "persistence_location"}:
            continue
        keep.append(" ".join(words))
    return keep


def test_compose_mosquitto_conf_is_the_production_one_but_for_paths_and_listeners() -> None:
    production = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
    assert _settings(DOCKER / "mosquitto.conf") == _settings(production)
    listeners = [line for line in (DOCKER / "mosquitto.conf").read_text().splitlines() if line.startswith("listener")]
    assert listeners == ["listener 1883", "listener 8883"]


def _run_commands(dockerfile: str) -> list[str]:
    """Each command of each RUN instruction (split on &&), whitespace normalized."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    commands = []
    for line in joined.splitlines():
        if line.startswith("RUN "):
            commands += [" ".join(c.split()) for c in line[4:].split("&&")]
    return commands


def _readme_commands(readme: str) -> list[str]:
    """Each shell command in the README's fenced code blocks (split on &&), prompt and sudo removed."""
    commands = []
    for block in re.findall(r"```(?:sh|bash|shell|console)?\n(.*?)```", readme, flags=re.DOTALL):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip().removeprefix("$ ")
            if not line or line.startswith("#"):
                continue
            for command in line.split("&&"):
                words = shlex.split(command, comments=True)
                if words[:1] == ["sudo"]:
                    words = words[1:]
                commands.append(" ".join(shlex.quote(w) if " " in w else w for w in words))
    return commands


def _is_install(command: str) -> bool:
    return bool(re.search(r"-m venv|pip install|npm ci|deploy/setup\.sh", command))


def test_dockerfile_installs_with_the_readmes_commands() -> None:
    if not README.exists():
        pytest.skip("README.md is not written yet: nothing to compare the Dockerfile's install commands with")
    docker_installs = [c for c in _run_commands(DOCKERFILE.read_text()) if _is_install(c)]
    readme_installs = [c for c in _readme_commands(README.read_text()) if _is_install(c)]
    if not readme_installs:
        pytest.skip("README.md gives no install command (deploy/setup.sh, python3 -m venv, pip install) yet")
    normalized = {c.replace("'", "").replace('"', "") for c in readme_installs}
    assert docker_installs, "the Dockerfile installs nothing"
    for command in docker_installs:
        assert command.replace("'", "").replace('"', "") in normalized, (
            f"the Dockerfile runs {command!r}, which is not one of the README's install commands: "
            f"{readme_installs}"
        )


def test_dockerfile_is_multi_stage_and_runs_as_an_unprivileged_user() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, flags=re.MULTILINE)
    assert [s for _, s in stages] == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER vigil$", runtime, flags=re.MULTILINE)
    assert "COPY --from=build /opt/vigil /opt/vigil" in runtime
    assert "nodejs" not in runtime and "python3-venv" not in runtime, "build tools belong to the build stage"
    # Everything the build stage copies must exist, or the build fails on a fresh clone.
    for source in re.findall(r"^COPY (?!--)(.+) \S+$", text, flags=re.MULTILINE):
        for path in source.split():
            if path != "README.md":  # the lead's README; checked by the test above when present
                assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which does not exist"
