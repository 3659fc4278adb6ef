"""The Rules page's masking: every apprise URL form, any case, a round trip that keeps the file."""

from __future__ import annotations

import pytest
import yaml

from dashboard.rules_view import StalePlaceholder, mask_result, mask_secrets, unmask_secrets

# (as written in a rules file, the secrets in it)
FORMS = [
    ('"tgram://123456789:AAEhBOweik6ad9r/987654"', ["123456789", "AAEhBOweik6ad9r", "987654"]),
    ("Tgram://123456789:AAEhBOweik6ad9r/987654", ["123456789", "AAEhBOweik6ad9r"]),
    ("TGRAM://123456789:AAEhBOweik6ad9r/987654", ["AAEhBOweik6ad9r"]),
    ('"mailto://user:Pa55,w0rd@example.com?to=kitchen@example.com"', ["Pa55,w0rd", "w0rd"]),
    ("'mailtos://user:It''sSecret@smtp.example.com'", ["sSecret"]),
    ('"json://hook:HookPass@hooks.example.com:8443/in?token=Tok3nValue"', ["HookPass", "Tok3nValue"]),
    ('"form://hooks.example.com/in?apikey=FormKey99&x=1"', ["FormKey99"]),
    ("xml://user:XmlPass1@host.example.com/path", ["XmlPass1"]),
    ("ntfy://ntfy.sh/freezer-topic-8d1c", ["freezer-topic-8d1c"]),
    ("ntfys://nuser:NtfyPass@ntfy.example.org/private-topic", ["NtfyPass", "private-topic"]),
    ("discord://112233445566/DiscordTok3n", ["112233445566", "DiscordTok3n"]),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general", ["TIiajkdnlazkcOXrIdevi7FQ"]),
    ("matrixs://muser:MatrixPass@matrix.example.org/#room", ["MatrixPass"]),
    ("pover://PoverUser1@PoverTok3n", ["PoverUser1", "PoverTok3n"]),
    ("gotify://gotify.example.com/GotifyAppTok3n", ["GotifyAppTok3n"]),
    ('"mailto://${VIGIL_NOTIFY_USER}:Literal9Pass@example.com/${VIGIL_NOTIFY_X}"', ["Literal9Pass"]),
]


@pytest.mark.parametrize(("written", "secrets"), FORMS)
def test_every_form_is_hidden_in_a_block_list_and_a_flow_list(written: str, secrets: list[str]) -> None:
    for text in (f"receivers:\n  ops:\n    - {written}  # the on-call phone\n",
                 f"receivers:\n  ops: [{written}, \"ntfy://ntfy.sh/${{VIGIL_NOTIFY_TOPIC}}\"]\n"):
        masked = mask_secrets(text)
        assert not [s for s in secrets if s in masked], masked
        assert "://hidden-" in masked
        # Still the same YAML: one URL per item, the comment kept.
        assert len(yaml.safe_load(masked)["receivers"]["ops"]) == len(yaml.safe_load(text)["receivers"]["ops"])
        assert unmask_secrets(masked, text) == text


def test_a_url_whose_secrets_come_from_the_environment_is_shown() -> None:
    for url in ["ntfy://ntfy.sh/${VIGIL_NOTIFY_TOPIC}", "tgram://${VIGIL_NOTIFY_TELEGRAM}",
                "mailto://${VIGIL_NOTIFY_USER}:${VIGIL_NOTIFY_PASS}@smtp.example.com"]:
        assert mask_secrets(f"- \"{url}\"\n") == f"- \"{url}\"\n"
    # but not one with a literal path, user or query next to the reference
    for url in ["tgram://${VIGIL_NOTIFY_TELEGRAM}/12345678", "ntfy://ntfy.sh/${VIGIL_NOTIFY_T}?auth=abc123"]:
        assert "hidden-" in mask_secrets(url)


def test_placeholders_are_stable_but_unguessable() -> None:
    text = "- ntfy://ntfy.sh/topic1\n"
    assert mask_secrets(text) == mask_secrets(text) != mask_secrets("- ntfy://ntfy.sh/topic2\n")
    import hashlib

    weak = hashlib.sha256(b"ntfy://ntfy.sh/topic1").hexdigest()
    assert weak[:10] not in mask_secrets(text), "a bare hash lets anyone test guesses of a short secret"


def test_a_placeholder_the_file_does_not_have_is_refused() -> None:
    with pytest.raises(StalePlaceholder) as err:
        unmask_secrets("- tgram://hidden-0123456789abcdef\n", "- tgram://abc/1\n")
    assert "reload the page" in str(err.value)


def test_check_results_are_cleaned_of_cut_and_requoted_secrets() -> None:
    original = '- "json://hook:HookPass77@hooks.example.com/in?token=Tok3nValue"\n'
    result = {"ok": False, "issues": ["x: expected a number, got 'json://hook:HookPass77@hooks.examp...'",
                                      "y: unknown receiver \"Tok3nValue\""], "rules": ["JSON://a:b@c/d"]}
    cleaned = mask_result(result, original)
    text = repr(cleaned)
    assert "HookPass77" not in text and "Tok3nValue" not in text and "a:b@c" not in text
    assert cleaned["ok"] is False and cleaned["issues"][0].startswith("x: expected a number")
