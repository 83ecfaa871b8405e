"""The log's checkpoint key inside a TPM 2.0 (tpm2-pytss): created once, persisted, never exported.

An ECDSA P-256 key in the owner hierarchy with fixedTPM, fixedParent, sensitiveDataOrigin
and noDA (an unclean TPM restart counts as a dictionary-attack failure; without noDA a few
of them lock the key out), persisted
at a handle so a restarted server (or TPM) finds the same key. It signs checkpoints as a
signed-note type 0x02 key: a DER ECDSA signature over SHA-256 of the note text.

Every TPM call runs on a worker thread with a timeout: a TPM that hangs (the TCTIs have no
timeout of their own) must not hang the log. After a failure or a timeout the ESAPI context is
dropped and re-opened on the next call (a context that saw a TCTI failure stays wedged).
A call that timed out keeps its thread and context until it returns; only such calls still
outstanding count towards declaring the TPM hung, so a TPM that answers again is used again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from client.note import ECDSAVerifier, check_key_name, ecdsa_key_id

os.environ.setdefault("TSS2_LOG", "all+none")  # libtss2 logs to stderr otherwise

DEFAULT_HANDLE = 0x81000010
DEFAULT_TIMEOUT = 10.0
MAX_ABANDONED = 4
REQUIRED_ATTRIBUTES = ("FIXEDTPM", "FIXEDPARENT", "SENSITIVEDATAORIGIN", "SIGN_ENCRYPT", "NODA")


class TpmError(Exception):
    """The TPM could not be reached, did not answer in time, or refused: the message names the
    TCTI, so an operator knows which device or socket to look at."""


def _pytss() -> Any:
    try:
        import tpm2_pytss
    except ImportError as exc:  # pragma: no cover - installed by scripts/setup.sh
        raise TpmError("tpm2-pytss is not installed (scripts/setup.sh installs it)") from exc
    return tpm2_pytss


class _Session:
    """One ESAPI context and the handles opened in it, owned by one TPM thread."""

    def __init__(self) -> None:
        self.esapi: Any = None
        self.key_tr: Any = None
        self.abandoned = False  # its caller gave up: do not start the call once connected

    def close(self) -> None:
        if self.esapi is not None:
            with contextlib.suppress(Exception):  # a wedged context may fail to close: forget it
                self.esapi.close()
        self.esapi, self.key_tr = None, None


class TpmKey:
    """One persisted signing key in one TPM, reached through `tcti` (e.g. `device:/dev/tpmrm0`,
    `swtpm:path=/run/swtpm/sock`)."""

    def __init__(self, tcti: str, handle: int = DEFAULT_HANDLE, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.tcti, self.handle, self.timeout = tcti, handle, timeout
        self._lock = threading.Lock()
        self._session = _Session()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpm")
        # Calls that timed out and have not returned: their thread still runs inside its own
        # session, which is closed only once the call returns. While MAX_ABANDONED are
        # outstanding the TPM is treated as hung and sent nothing more.
        self._abandoned: list[Future[Any]] = []

    def close(self) -> None:
        with self._lock:
            session, pool = self._session, self._pool
            pool.submit(session.close)
            pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, what: str, fn: Any) -> Any:
        """Run `fn(esapi, session)` on this key's TPM thread within the timeout; errors become
        TpmError. Each thread owns one session (context + handles): a thread abandoned after a
        timeout keeps its own and never touches the next one's."""
        with self._lock:
            outstanding = self._outstanding()
            if outstanding >= MAX_ABANDONED:
                raise TpmError(f"the TPM at {self.tcti!r} is hung: {outstanding} calls that timed out "
                               "have not returned; nothing more is sent to it until they do")
            session = self._session
            fut: Future[Any] = self._pool.submit(self._in_thread, session, fn)
            try:
                return fut.result(timeout=self.timeout)
            except FuturesTimeout:
                self._abandon(session, fut)
                raise TpmError(f"the TPM at {self.tcti!r} did not answer {what} within "
                               f"{self.timeout:g} s") from None
            except TpmError:
                self._pool.submit(session.close)
                raise
            except Exception as exc:
                self._pool.submit(session.close)  # a context that saw a TCTI failure is wedged
                raise TpmError(f"TPM at {self.tcti!r}: {what} failed: {exc}") from exc

    def outstanding(self) -> int:
        """Calls that timed out and are still inside the TPM (what "hung" counts)."""
        with self._lock:
            return self._outstanding()

    def _outstanding(self) -> int:
        self._abandoned = [f for f in self._abandoned if not f.done()]
        return len(self._abandoned)

    def _abandon(self, session: _Session, fut: Future[Any]) -> None:
        """Leave a timed-out call its thread and session; later calls get new ones.

        Its context is closed only once the call returned: the done callback runs in that
        thread right after the call (or here, if it returned meanwhile). Freeing a context
        while a hung call is still inside it crashed CI (a use-after-free), so never sooner;
        but then at once, so connections to the TPM do not pile up over the log's life."""
        self._pool.shutdown(wait=False, cancel_futures=True)  # its thread exits after the call
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpm")
        self._session = _Session()
        session.abandoned = True
        self._abandoned.append(fut)
        fut.add_done_callback(lambda _f: session.close())

    def _in_thread(self, session: _Session, fn: Any) -> Any:
        t = _pytss()
        if session.esapi is None:
            try:
                esapi = t.ESAPI(self.tcti)  # may block on a hung TPM: assign only once built
            except Exception as exc:
                raise TpmError(f"cannot reach the TPM at {self.tcti!r}: {exc}") from exc
            session.esapi = esapi
        if session.abandoned:  # connected only after the caller gave up: send nothing
            raise TpmError(f"the call to the TPM at {self.tcti!r} was abandoned")
        return fn(session.esapi, session)

    # --- key lifecycle ------------------------------------------------------------------

    def exists(self) -> bool:
        t = _pytss()

        def probe(e: Any, _s: _Session) -> bool:
            try:
                e.tr_from_tpmpublic(self.handle)
            except t.TSS2_Exception as exc:
                if exc.rc & 0xFFF == 0x18B:  # TPM_RC_HANDLE: nothing persisted there
                    return False
                raise
            return True

        return bool(self._call("a handle lookup", probe))

    def create(self) -> bytes:
        """Create the key and persist it at the handle; returns its DER SubjectPublicKeyInfo."""
        t = _pytss()
        a = t.TPMA_OBJECT

        def create(e: Any, _s: _Session) -> bytes:
            srk_tmpl = t.TPMT_PUBLIC.parse(
                "ecc256:aes128cfb", objectAttributes=a.DEFAULT_TPM2_TOOLS_CREATEPRIMARY_ATTRS | a.NODA)
            srk = e.create_primary(t.TPM2B_SENSITIVE_CREATE(), t.TPM2B_PUBLIC(publicArea=srk_tmpl))[0]
            try:
                attrs = (a.SIGN_ENCRYPT | a.FIXEDTPM | a.FIXEDPARENT | a.SENSITIVEDATAORIGIN
                         | a.USERWITHAUTH | a.NODA)
                tmpl = t.TPMT_PUBLIC.parse("ecc256:ecdsa-sha256", objectAttributes=attrs)
                priv, pub = e.create(srk, t.TPM2B_SENSITIVE_CREATE(), t.TPM2B_PUBLIC(publicArea=tmpl))[:2]
                key = e.load(srk, priv, pub)
            finally:
                e.flush_context(srk)  # swtpm has room for three transient objects
            try:
                e.evict_control(t.ESYS_TR.OWNER, key, self.handle)
            finally:
                e.flush_context(key)
            return _spki(e.read_public(e.tr_from_tpmpublic(self.handle))[0])

        return bytes(self._call("key creation", create))

    def public(self) -> tuple[bytes, tuple[str, ...]]:
        """(DER SubjectPublicKeyInfo, object attribute names) of the persisted key."""
        t = _pytss()

        def read(e: Any, _s: _Session) -> tuple[bytes, tuple[str, ...]]:
            pub = e.read_public(e.tr_from_tpmpublic(self.handle))[0]
            attrs = pub.publicArea.objectAttributes
            names = tuple(n for n in REQUIRED_ATTRIBUTES if attrs & getattr(t.TPMA_OBJECT, n))
            return _spki(pub), names

        spki, names = self._call("reading the public key", read)
        return bytes(spki), tuple(names)

    def sign_digest(self, digest: bytes) -> bytes:
        """DER ECDSA signature of a SHA-256 digest by the persisted key."""
        t = _pytss()

        def sign(e: Any, session: _Session) -> bytes:
            if session.key_tr is None:
                session.key_tr = e.tr_from_tpmpublic(self.handle)
            scheme = t.TPMT_SIG_SCHEME(scheme=t.TPM2_ALG.ECDSA)
            scheme.details.any.hashAlg = t.TPM2_ALG.SHA256
            ticket = t.TPMT_TK_HASHCHECK(tag=t.TPM2_ST.HASHCHECK, hierarchy=t.TPM2_RH.NULL)
            return bytes(e.sign(session.key_tr, t.TPM2B_DIGEST(digest), scheme, ticket))

        return bytes(self._call("a signature", sign))

    def certify_with_ak(self, ak_handle: int, qualifying: bytes) -> dict[str, bytes]:
        """Create (once) a restricted ECDSA attestation key persisted at `ak_handle`, and have
        it certify the checkpoint key: TPM2_Certify, with `qualifying` as extra data.
        Returns the raw TPM structures of the key attestation (client.tpmattest)."""
        t = _pytss()
        a = t.TPMA_OBJECT

        def run(e: Any, _s: _Session) -> dict[str, bytes]:
            try:
                ak = e.tr_from_tpmpublic(ak_handle)
            except t.TSS2_Exception:
                srk_tmpl = t.TPMT_PUBLIC.parse(
                    "ecc256:aes128cfb", objectAttributes=a.DEFAULT_TPM2_TOOLS_CREATEPRIMARY_ATTRS | a.NODA)
                srk = e.create_primary(t.TPM2B_SENSITIVE_CREATE(), t.TPM2B_PUBLIC(publicArea=srk_tmpl))[0]
                try:
                    attrs = (a.SIGN_ENCRYPT | a.RESTRICTED | a.FIXEDTPM | a.FIXEDPARENT
                             | a.SENSITIVEDATAORIGIN | a.USERWITHAUTH | a.NODA)
                    tmpl = t.TPMT_PUBLIC.parse("ecc256:ecdsa-sha256", objectAttributes=attrs)
                    # parse() gives a restricted key an AES scheme, which create refuses.
                    tmpl.parameters.eccDetail.symmetric.algorithm = t.TPM2_ALG.NULL
                    priv, pub = e.create(srk, t.TPM2B_SENSITIVE_CREATE(), t.TPM2B_PUBLIC(publicArea=tmpl))[:2]
                    loaded = e.load(srk, priv, pub)
                finally:
                    e.flush_context(srk)
                try:
                    e.evict_control(t.ESYS_TR.OWNER, loaded, ak_handle)
                finally:
                    e.flush_context(loaded)
                ak = e.tr_from_tpmpublic(ak_handle)
            key = e.tr_from_tpmpublic(self.handle)
            null = t.TPMT_SIG_SCHEME(scheme=t.TPM2_ALG.NULL)  # the AK's own scheme
            attest, sig = e.certify(key, ak, t.TPM2B_DATA(qualifying), null)
            return {"key_public": e.read_public(key)[0].publicArea.marshal(),
                    "ak_public": e.read_public(ak)[0].publicArea.marshal(),
                    "certify_info": bytes(attest), "certify_signature": sig.marshal()}

        return dict(self._call("the key certification", run))

    def ek_certificate(self, nv_index: int = 0x01C00002) -> bytes | None:
        """The EK certificate (DER) the manufacturer stored in NV, if the TPM has one."""
        t = _pytss()

        def read_ek(e: Any, _s: _Session) -> bytes | None:
            try:
                nv = e.tr_from_tpmpublic(nv_index)
            except t.TSS2_Exception:
                return None
            size = e.nv_read_public(nv)[0].nvPublic.dataSize
            data = b""
            while len(data) < size:
                data += bytes(e.nv_read(nv, min(512, size - len(data)), len(data)))
            return data

        return self._call("reading the EK certificate", read_ek)  # type: ignore[no-any-return]

    def evict(self) -> None:
        """Remove the persisted key (tests, key rotation)."""
        t = _pytss()
        def evict(e: Any, session: _Session) -> None:
            e.evict_control(t.ESYS_TR.OWNER, e.tr_from_tpmpublic(self.handle), self.handle)
            session.key_tr = None

        self._call("eviction", evict)


def _spki(pub: Any) -> bytes:
    key = serialization.load_pem_public_key(pub.to_pem())
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class TpmSigner:
    """Signed-note type 0x02 signer whose key never leaves the TPM (same interface as
    client.note.ECDSASigner)."""

    def __init__(self, name: str, key: TpmKey, spki_der: bytes) -> None:
        check_key_name(name)
        self.name, self.key, self.spki_der = name, key, spki_der
        self.key_id = ecdsa_key_id(spki_der)
        public = serialization.load_der_public_key(spki_der)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        self._public = public

    def __repr__(self) -> str:
        return f"TpmSigner(name={self.name!r}, key_id={self.key_id:08x}, tcti={self.key.tcti!r})"

    def sign(self, msg: bytes) -> bytes:
        """Sign in the TPM, then check the signature with the recorded key: if the key at the
        handle ever changed (a cleared or replaced TPM), fail rather than commit a checkpoint
        whose signature nobody can verify."""
        sig = self.key.sign_digest(hashlib.sha256(msg).digest())
        try:
            self._public.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise TpmError(f"the TPM at {self.key.tcti!r} no longer holds the log's key at handle "
                           f"0x{self.key.handle:08x}") from None
        return sig

    def probe(self) -> None:
        """Raise TpmError unless the TPM signs with the log's key (health checks)."""
        self.sign(b"tlog TPM health probe\n")

    def verifier(self) -> ECDSAVerifier:
        return ECDSAVerifier(self.name, self.spki_der)


def open_signer(name: str, tcti: str, *, handle: int = DEFAULT_HANDLE, create: bool = False,
                expected_spki: bytes | None = None, timeout: float = DEFAULT_TIMEOUT) -> TpmSigner:
    """The TPM signer for a log: the persisted key (created first if `create` and absent),
    checked against the key the log was set up with (`expected_spki`)."""
    key = TpmKey(tcti, handle, timeout)
    try:
        if not key.exists():
            if not create:
                raise TpmError(f"no key is persisted at handle 0x{handle:08x} in the TPM at {tcti!r}; "
                               "run `tlog tpm init`")
            key.create()
        spki, attrs = key.public()
        missing = [a for a in REQUIRED_ATTRIBUTES if a not in attrs]
        if missing:
            raise TpmError(f"the key at 0x{handle:08x} lacks attributes {missing}")
        if expected_spki is not None and spki != expected_spki:
            raise TpmError(f"the key at 0x{handle:08x} in {tcti!r} is not the log's TPM key "
                           "(another TPM, or the TPM was cleared)")
    except BaseException:
        key.close()
        raise
    return TpmSigner(name, key, spki)
