"""TLS for the processes that serve HTTP (log, witness, monitor) and for the calls they make.

A deployment without a reverse proxy serves HTTPS itself from a certificate and key file;
with a client CA file it also asks each client for a certificate (mutual TLS) and knows a
verified client by its certificate's name. Certificates are short-lived in practice, so the
files are re-read on SIGHUP without a restart: `ReloadingContext` is the SSLContext the
server holds for its whole life, and each new connection is wrapped by whichever context
the files gave last. A reload that fails (a half-written file, a key that does not match)
keeps the previous context and says why, so a botched renewal never takes a log offline.
"""

from __future__ import annotations

import logging
import signal
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

log = logging.getLogger("tlog.tls")


class TLSConfigError(ValueError):
    """The certificate, key or CA files cannot be used."""


@dataclass(frozen=True)
class ServerTLS:
    """The files a TLS server reads: its chain and key, and for mutual TLS the CA (bundle)
    whose certificates identify clients. `require_client_cert` refuses the handshake of a
    client without one; otherwise a certificate is asked for but optional, and the app
    decides (reads stay public while submitters prove who they are)."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    require_client_cert: bool = False

    def build(self) -> ssl.SSLContext:
        """A fresh server context from the files (TLS 1.2 or newer)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_COMPRESSION
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"TLS certificate {self.cert_file} with key {self.key_file}: "
                                 f"{_reason(exc)}") from None
        if self.client_ca_file:
            try:
                ctx.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TLSConfigError(f"TLS client CA {self.client_ca_file}: {_reason(exc)}") from None
            ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        elif self.require_client_cert:
            raise TLSConfigError("client certificates are required but no client CA file is set")
        return ctx


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


class ReloadingContext(ssl.SSLContext):
    """An SSLContext whose connections are made by the context last built from `files`.

    asyncio, uvloop and `ssl.SSLContext.wrap_socket` users all call `wrap_bio` or
    `wrap_socket` per connection, so delegating those two is enough for a server that was
    handed this object once to pick up renewed files."""

    files: ServerTLS
    _current: ssl.SSLContext
    _lock: threading.Lock

    def __new__(cls, files: ServerTLS) -> ReloadingContext:
        first = files.build()  # fail at start-up, not at the first connection
        self = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        self.files = files
        self._current = first
        self._lock = threading.Lock()
        return self

    def __init__(self, files: ServerTLS) -> None:  # all done in __new__, as SSLContext does
        pass

    @property
    def current(self) -> ssl.SSLContext:
        return self._current

    def reload(self) -> bool:
        """Re-read the files; on failure keep serving with the previous ones. True if the
        new files are in use."""
        try:
            fresh = self.files.build()
        except TLSConfigError as exc:
            log.error("TLS reload failed, still serving the previous certificate: %s", exc)
            return False
        with self._lock:
            self._current = fresh
        log.warning("TLS certificate reloaded from %s", self.files.cert_file)
        return True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        return self._current.wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        return self._current.wrap_socket(*args, **kwargs)


def reload_on_sighup(ctx: ReloadingContext | None) -> None:
    """Re-read the TLS files when this process gets SIGHUP (main thread only). Without TLS
    there is nothing to re-read (token files are re-read as they change), but SIGHUP must
    not end the server by its default action: `systemctl reload` would take a log down."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread; an embedding program owns them
    if ctx is None:
        signal.signal(signal.SIGHUP, lambda _sig, _frame: log.warning(
            "SIGHUP: no TLS files to re-read (token files are re-read when they change)"))
    else:
        signal.signal(signal.SIGHUP, lambda _sig, _frame: ctx.reload())


@dataclass(frozen=True)
class ContextFactory:
    """uvicorn's `ssl_context_factory`: each server process (worker) builds its own
    reloading context from the files and re-reads them on SIGHUP. Picklable, since
    uvicorn's multi-worker supervisor hands its configuration to spawned workers."""

    files: ServerTLS

    def __call__(self, _config: Any, _default: Any) -> ssl.SSLContext:
        ctx = ReloadingContext(self.files)
        reload_on_sighup(ctx)
        return ctx


def peer_name(cert_der: bytes | None) -> str | None:
    """The name a verified client certificate identifies: its subject's common name, or
    else its first DNS or URI subject alternative name; None without one."""
    if not cert_der:
        return None
    cert = x509.load_der_x509_certificate(cert_der)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns and isinstance(cns[0].value, str) and cns[0].value:
        return cns[0].value
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for kind in (x509.DNSName, x509.UniformResourceIdentifier):
        names = san.get_values_for_type(kind)
        if names:
            return str(names[0])
    return None


def connection_peer(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The verified client name of a TLS connection (None: plain, or no client certificate).
    `getpeercert` returns a certificate only once OpenSSL verified it against the client CA."""
    if ssl_object is None:
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):  # the handshake is not done
        return None
    try:
        return peer_name(der)
    except (ValueError, TypeError):  # OpenSSL verified a certificate `cryptography` cannot read:
        return None  # it names no one, so the caller counts as anonymous


def peer_of(scope: Any) -> str | None:
    """The name of the verified client certificate behind an ASGI request (None: none shown,
    or plain HTTP), as `client.guarded_http` records it."""
    tls = scope.get("extensions", {}).get("tls")
    return tls.get("client_cert_name") if tls else None


def client_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """A context for our outgoing HTTPS calls (the log to its witnesses): the system CAs or
    `ca_file`, and a client certificate for peers that ask for one."""
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            ctx.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"TLS client files ({ca_file or 'system CAs'}, "
                             f"{cert_file or 'no client certificate'}): {_reason(exc)}") from None
    return ctx


def https_url(url: str) -> str:
    """The base URL `client.http.listen` printed, as the https one a TLS server answers on."""
    return "https://" + url.removeprefix("http://")


def check_files(cert_file: str, key_file: str, what: str) -> None:
    """Both files set, or neither: a half TLS configuration is a mistake to report."""
    if bool(cert_file) != bool(key_file):
        raise TLSConfigError(f"{what}: set both a TLS certificate and key file, or neither")
    for f in (cert_file, key_file):
        if f and not Path(f).is_file():
            raise TLSConfigError(f"{what}: {f} is not a file")
