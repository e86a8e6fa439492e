"""GitHub's documented signature vector and what the check refuses."""

import pytest

from app.webhooks.providers.base import VerificationError
from app.webhooks.providers.github import GitHub, sign

# GitHub docs, "Validating webhook deliveries": the published test values.
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
EXPECTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_documented_vector_is_accepted():
    assert sign(SECRET, BODY) == EXPECTED
    GitHub().verify(SECRET, {"X-Hub-Signature-256": EXPECTED}, BODY)


def test_one_changed_byte_is_refused():
    with pytest.raises(VerificationError) as refused:
        GitHub().verify(SECRET, {"X-Hub-Signature-256": EXPECTED}, b"Hello, World?")
    assert refused.value.check == "bad_signature"
    assert "X-Hub-Signature-256" in refused.value.detail


def test_signature_of_another_secret_is_refused():
    with pytest.raises(VerificationError, match="X-Hub-Signature-256"):
        GitHub().verify("another secret", {"X-Hub-Signature-256": EXPECTED}, BODY)


def test_missing_header_names_the_header():
    with pytest.raises(VerificationError) as refused:
        GitHub().verify(SECRET, {}, BODY)
    assert refused.value.check == "missing_header"
    assert "X-Hub-Signature-256" in refused.value.detail
