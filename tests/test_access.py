"""The log's access decision (tlog.access), without a server: who may submit and read."""

from __future__ import annotations

from pathlib import Path

from client.tokens import TokenFile, add_token
from tlog.access import READ_REFUSAL, SUBMIT_REFUSAL, Access, Caller


def test_an_open_log_asks_no_one(tmp_path: Path) -> None:
    access = Access(None, None, certs=False)
    assert not access.active
    assert access.admit("POST", "/v1/entries", None, None) == (None, None)
    assert access.admit("GET", "/checkpoint", None, "alice") == (None, None)


def test_submitters_prove_themselves_by_token_or_certificate(tmp_path: Path) -> None:
    token = add_token(tmp_path / "t", "ci")
    access = Access(TokenFile(tmp_path / "t"), None, certs=True)
    assert access.admit("POST", "/v1/entries", None, None) == (None, SUBMIT_REFUSAL)
    assert access.admit("POST", "/api/v2/log/entries", "Bearer nope", None) == (None, SUBMIT_REFUSAL)
    assert access.admit("POST", "/v1/entries", f"Bearer {token}", None) == (Caller("ci", "token"), None)
    assert access.admit("POST", "/v1/entries", None, "alice") == (Caller("alice", "cert"), None)
    # Reads stay public, and nobody is identified on them (no hashing per read).
    assert access.admit("GET", "/v1/entries/0", None, None) == (None, None)
    assert Caller("ci", "token").key != Caller("ci", "cert").key


def test_a_certificate_counts_only_where_a_client_ca_is_configured(tmp_path: Path) -> None:
    access = Access(TokenFile(tmp_path / "missing"), None, certs=False)
    assert access.admit("POST", "/v1/entries", None, "alice") == (None, SUBMIT_REFUSAL)


def test_a_private_log_opens_reads_to_readers_and_submitters_only(tmp_path: Path) -> None:
    reader = add_token(tmp_path / "r", "auditor")
    writer = add_token(tmp_path / "w", "ci")
    access = Access(TokenFile(tmp_path / "w"), TokenFile(tmp_path / "r"), certs=False)
    assert access.admit("GET", "/healthz", None, None) == (None, None)
    for path in ("/checkpoint", "/tile/0/000", "/metrics", "/explorer/", "/v1/log"):
        assert access.admit("GET", path, None, None) == (None, READ_REFUSAL), path
    assert access.admit("GET", "/checkpoint", f"Bearer {reader}", None) == (Caller("auditor", "reader"), None)
    assert access.admit("GET", "/checkpoint", f"Bearer {writer}", None) == (Caller("ci", "token"), None)
    # A reader's token never submits.
    assert access.admit("POST", "/v1/entries", f"Bearer {reader}", None) == (None, SUBMIT_REFUSAL)


def test_a_private_log_without_submitters_takes_no_anonymous_entries(tmp_path: Path) -> None:
    """read_tokens_file alone: ServeConfig refuses it, and the decision is closed anyway (a
    receipt would show an anonymous caller the private tree)."""
    import pytest

    from tlog.config import ConfigError, ServeConfig

    reader = add_token(tmp_path / "r", "auditor")
    access = Access(None, TokenFile(tmp_path / "r"), certs=False)
    for path in ("/v1/entries", "/api/v2/log/entries"):
        assert access.admit("POST", path, None, None) == (None, SUBMIT_REFUSAL)
        assert access.admit("POST", path, f"Bearer {reader}", None) == (None, SUBMIT_REFUSAL)
    with pytest.raises(ConfigError, match="read_tokens_file"):
        ServeConfig(read_tokens_file=str(tmp_path / "r"))
