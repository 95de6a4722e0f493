"""Secrets are masked where output enters xsoar-mt (SSH output, Elasticsearch answers), in every form a
message may quote them in: as is, in a `repr`, in JSON, URL-encoded. Cutting after that leaks nothing;
before it, a secret minus its last character was no longer found."""

from __future__ import annotations

import json

import pytest

from xsoar_mt.secrets import MASK, Redactor


@pytest.mark.parametrize(
    "secret", ["p'a\\ss\"w0rd", "it's-a-secret", 'back\\slash"quote', "plain-api-key-123", "päss'wörd"]
)
def test_every_quoted_form_of_a_secret_is_masked(secret: str) -> None:
    redactor = Redactor()
    redactor.register(secret)
    for shown in (secret, repr(secret), ascii(secret), json.dumps(secret), json.dumps(secret, ensure_ascii=False),
                  repr([secret]), repr({"k": secret}), json.dumps({"k": secret}), repr("x" + secret + "'")):  # fmt: skip
        masked = redactor.redact(shown)
        assert MASK in masked, (shown, masked)
        assert secret not in masked and secret[:-1] not in masked.replace(MASK, ""), (shown, masked)


def test_output_entering_over_ssh_is_masked_before_anything_cuts_it() -> None:
    from xsoar_mt.secrets import REDACTOR
    from xsoar_mt.ssh import _clean

    key = "api-key-" + "7f3a9c1e5b"
    REDACTOR.register(key)
    try:
        page = f"<html>401: the key {key} is not valid</html>".encode()
        text = _clean(page)
        assert key not in text and MASK in text
        for cut in (text[:30], text[-20:], repr(text[:35])):  # what messages do with it afterwards
            assert key[:-1] not in cut
    finally:
        REDACTOR.clear()


def test_the_sudo_prompt_xsoar_mt_asked_for_is_dropped_from_output() -> None:
    from xsoar_mt.remote import SUDO_PROMPT
    from xsoar_mt.ssh import _clean

    assert _clean(f"{SUDO_PROMPT}done\n".encode()) == "done\n"
