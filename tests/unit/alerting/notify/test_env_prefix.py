"""Receiver URLs read only VIGIL_NOTIFY_* variables: a rules author cannot send Vigil's own secrets anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.notify import MissingSecret, NotifyConfig, ReceiverUrl
from vigil.app.cli import main

ENV = {"VIGIL_MQTT_PASSWORD": "broker-pw", "VIGIL_INFLUXDB_TOKEN": "influx-token", "SMTP_PASS": "smtp-pw",
       "VIGIL_NOTIFY_SMTP_PASS": "notify-pw"}


@pytest.mark.parametrize("url", ["json://collector.example.com/${VIGIL_MQTT_PASSWORD}",
                                 "json://collector.example.com/?t=${VIGIL_INFLUXDB_TOKEN}",
                                 "mailto://u:${SMTP_PASS}@example.com", "json://h.example.com/${HOME}",
                                 "json://h.example.com/${VIGIL_NOTIFY_}"])
def test_other_variables_are_refused_when_the_rules_load(url: str) -> None:
    with pytest.raises(ValueError, match="not allowed in a receiver URL: only variables named VIGIL_NOTIFY_"):
        NotifyConfig.model_validate({"receivers": {"a": [url]}})


def test_the_message_says_what_to_rename() -> None:
    with pytest.raises(ValueError) as err:
        NotifyConfig.model_validate({"receivers": {"a": ["mailto://${SMTP_USER}:${SMTP_PASS}@example.com"]}})
    assert "${SMTP_USER}, ${SMTP_PASS} are not allowed" in str(err.value)
    assert "rename them to VIGIL_NOTIFY_SMTP_USER, VIGIL_NOTIFY_SMTP_PASS" in str(err.value)
    with pytest.raises(ValueError) as err:
        NotifyConfig.model_validate({"receivers": {"a": ["json://h.example.com/${VIGIL_MQTT_PASSWORD}"]}})
    assert "VIGIL_MQTT_PASSWORD is one of Vigil's own settings and never goes to a receiver" in str(err.value)


def test_a_url_made_without_validation_never_reads_another_variable() -> None:
    # e.g. a delivery queued by an older version, resolved by the courier after the upgrade
    from alerting.notify.config import SecretNotAllowed

    url = ReceiverUrl("json://collector.example.com/${VIGIL_MQTT_PASSWORD}")
    with pytest.raises(SecretNotAllowed) as err:
        url.resolve(ENV)
    assert isinstance(err.value, MissingSecret), "the courier fails such a delivery as it fails an unset one"
    assert "broker-pw" not in str(err.value) and "not allowed" in str(err.value)
    assert ReceiverUrl("mailto://u:${VIGIL_NOTIFY_SMTP_PASS}@example.com").resolve(ENV) == \
        "mailto://u:notify-pw@example.com"


def test_rules_check_says_so_with_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("receivers:\n  ops:\n    - \"mailto://u:${SMTP_PASS}@example.com\"\n"
                 "    - \"ntfy://ntfy.sh/${VIGIL_NOTIFY_UNSET_TOPIC_X}\"\n")
    assert main(["rules", "check", str(f)]) == 3
    err = capsys.readouterr().err
    assert (f"{f}:3: receivers.ops[0]: ${{SMTP_PASS}} is not allowed in a receiver URL: only variables named "
            "VIGIL_NOTIFY_*; rename it to VIGIL_NOTIFY_SMTP_PASS") in err
    f.write_text("receivers:\n  ops: [\"ntfy://ntfy.sh/${VIGIL_NOTIFY_UNSET_TOPIC_X}\"]\n")
    assert main(["rules", "check", str(f)]) == 0
    assert "note: ${VIGIL_NOTIFY_UNSET_TOPIC_X} is not set here" in capsys.readouterr().err
