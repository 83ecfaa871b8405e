"""Who may make a request to the log: submitters, and on a private log readers too.

A submitter proves itself by a bearer token (`submit_tokens_file`) or by a client certificate
issued by `tls_client_ca_file` (mutual TLS); either names it, and the name goes into metrics,
the access log and its rate-limit budget. Setting either closes submissions to everyone
else. A private log (`read_tokens_file`) also closes reads: a reader's token, a submitter's
token or a client certificate opens them. `/healthz` stays open for load balancers.
The decision is pure (no I/O but the token files' re-reads), so it is tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client.tokens import TokenFile

OPEN_PATHS = frozenset({"/healthz"})
WRITE_PATHS = frozenset({"/v1/entries", "/api/v2/log/entries"})


@dataclass(frozen=True)
class Caller:
    name: str
    via: str  # "token" (a submitter's token), "cert" (a client certificate) or "reader"

    @property
    def key(self) -> str:
        """Its rate-limit identity: names of the three kinds never share a budget."""
        return f"{self.via}:{self.name}"


@dataclass(frozen=True)
class Refusal:
    message: str


SUBMIT_REFUSAL = Refusal("this log takes entries only from its submitters: send `Authorization: "
                         "Bearer <token>` or a client certificate")
READ_REFUSAL = Refusal("this log is private: send `Authorization: Bearer <token>` or a client certificate")


class Access:
    def __init__(self, submitters: TokenFile | None, readers: TokenFile | None, certs: bool) -> None:
        self.submitters, self.readers, self.certs = submitters, readers, certs
        # A private log is closed to anonymous submitters too, even with no submitter set up
        # (ServeConfig refuses that configuration; this is the second line): a receipt would
        # show anyone the private tree.
        self.submit_closed = submitters is not None or certs or readers is not None
        self.read_closed = readers is not None
        self.active = self.submit_closed or self.read_closed

    @classmethod
    def from_config(cls, config: object) -> Access:
        def tokens(path: str) -> TokenFile | None:
            return TokenFile(Path(path)) if path else None

        return cls(tokens(config.submit_tokens_file), tokens(config.read_tokens_file),  # type: ignore[attr-defined]
                   bool(config.tls_client_ca_file))  # type: ignore[attr-defined]

    def admit(self, method: str, path: str, authorization: str | None,
              cert_name: str | None) -> tuple[Caller | None, Refusal | None]:
        """(who is calling, if it matters here; why the request is refused, or None)."""
        write = method == "POST" and path in WRITE_PATHS
        if write:
            if not self.submit_closed:
                return None, None
            caller = self._submitter(authorization, cert_name)
            return caller, None if caller is not None else SUBMIT_REFUSAL
        if not self.read_closed or path in OPEN_PATHS:
            return None, None
        caller = self._submitter(authorization, cert_name)
        if caller is None and self.readers is not None:
            name = self.readers.submitter(authorization)
            caller = Caller(name, "reader") if name is not None else None
        return caller, None if caller is not None else READ_REFUSAL

    def _submitter(self, authorization: str | None, cert_name: str | None) -> Caller | None:
        if cert_name is not None and self.certs:
            return Caller(cert_name, "cert")
        if self.submitters is not None:
            name = self.submitters.submitter(authorization)
            if name is not None:
                return Caller(name, "token")
        return None
