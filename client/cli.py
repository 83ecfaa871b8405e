"""`tlog-client`: submit to a log, and verify what it hands out — offline or online.

Exit codes (stable, for scripts and CI): 0 ok, 1 verification failed (bad signature or
proof, policy not met, inconsistent log), 2 usage or input error, 3 network error.

Online commands read only the C2SP API (checkpoint, tiles, entry bundles) and compute every
proof themselves; each new checkpoint must be consistent with the newest one stored in the
trust state directory (`--state`, default `$TLOG_CLIENT_STATE` or
`~/.local/state/tlog-client`), else the command fails with the evidence.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from client import merkle
from client.attest import INTOTO_PAYLOAD_TYPE, parse_envelope, parse_leaf
from client.audit import full_audit, resume_path
from client.encoding import b64encode
from client.errors import (
    ConsistencyError,
    LogAPIError,
    MalformedError,
    NetworkError,
    TlogError,
)
from client.files import write_atomically
from client.keyfile import vkey_lines
from client.logclient import LogClient
from client.policy import TrustPolicy, load_policy, policy_from_dict
from client.signing import dsse_submission, hashedrekord_submission, load_private_key
from client.state import TrustState
from client.verify import VerifiedCheckpoint, parse_receipt, verify_receipt, verify_receipt_doc

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NETWORK = 0, 1, 2, 3
MAX_INPUT_FILE = 256 << 20


class UsageError(Exception):
    """Bad arguments or unreadable input files (exit 2)."""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > MAX_INPUT_FILE:
        raise UsageError(f"{what} {path} is larger than {MAX_INPUT_FILE} bytes")
    return data


def _write(path: Path, data: bytes) -> None:
    write_atomically(path, data, mode=0o644)


def _emit(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def _say(msg: str) -> None:
    print(f"tlog-client: {msg}", file=sys.stderr)


# --- shared setup ---------------------------------------------------------------------------


def _policy(args: argparse.Namespace, required: bool = True) -> TrustPolicy | None:
    if getattr(args, "policy", None):
        return load_policy(args.policy)
    if required:
        raise UsageError("--policy is required (see docs/verifying.md)")
    return None


def _state(args: argparse.Namespace) -> TrustState | None:
    if getattr(args, "no_state", False):
        return None
    if args.state:
        return TrustState(args.state)
    env = os.environ.get("TLOG_CLIENT_STATE")
    if env:
        return TrustState(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return TrustState(Path(base) / "tlog-client")


def _client(args: argparse.Namespace, policy: TrustPolicy | None) -> LogClient:
    url = args.log or (policy.url if policy else None)
    if not url:
        raise UsageError("no log URL: pass --log or set url in the policy")
    return LogClient(url, policy, timeout=args.timeout, retries=args.retries, token=_token(args))


def _token(args: argparse.Namespace) -> str | None:
    """A private log's submitter token: from --token-file, else $TLOG_TOKEN (never a flag's
    value, which other users could read in the process list)."""
    from client.tokens import check_token, read_token

    path = getattr(args, "token_file", None)
    try:
        if path:
            return read_token(Path(path))
        token = os.environ.get("TLOG_TOKEN", "").strip()
        return check_token(token) if token else None
    except MalformedError as exc:
        raise UsageError(f"the submitter token: {exc}") from exc


def _latest(client: LogClient, policy: TrustPolicy, state: TrustState | None) -> VerifiedCheckpoint:
    """The log's verified checkpoint, proven consistent with (and stored in) the trust state."""
    client.check_log_kind()  # raw entries could imitate attestation leaves
    vc = client.checkpoint()
    if state is not None:
        adv = state.update(policy, vc, client.consistency_proof)
        if adv.previous is None:
            _say(f"trusting {policy.origin} at size {vc.size} for the first time (state: {state.dir})")
        elif adv.moved:
            _say(f"{policy.origin}: consistent {adv.previous.size} -> {vc.size}")
    return vc


# --- commands -------------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    policy = _policy(args, required=False)
    key = load_private_key(args.key)
    data = _read(args.file, "file")
    if args.sigstore_bundle:
        return _submit_sigstore(args, policy, key, data)
    if args.kind == "dsse":
        body = dsse_submission(key, data, args.payload_type)
    else:
        body = hashedrekord_submission(key, data)
    with _client(args, policy) as client:
        doc = client.submit(body)
    out = Path(args.out or args.file + ".receipt.json")
    envelope_out = None
    if args.kind == "dsse":
        stem = out.name.removesuffix(".json").removesuffix(".receipt")
        envelope_out = Path(args.envelope_out) if args.envelope_out else out.with_name(stem + ".dsse.json")
        _write(envelope_out, orjson.dumps(body["dsse"]))
    _write(out, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if policy is not None:
        vr = verify_receipt(doc, policy, envelope=body.get("dsse"),
                            artifact=data if args.kind == "hashedrekord" else None)
        _say(f"receipt verified: entry {vr.index} in checkpoint of size {vr.checkpoint.size}")
    print(f"entry {doc.get('index')}: receipt saved to {out}"
          + (f", envelope to {envelope_out}" if envelope_out else ""))
    return EXIT_OK


def _submit_sigstore(args: argparse.Namespace, policy: TrustPolicy | None, key: Any, data: bytes) -> int:
    """Submit as a Sigstore client does (the Rekor v2 API), timestamp the signature at the
    log's TSA, and write a v0.3 bundle that Sigstore verifiers take."""
    from client.rekor import bundle
    from client.signing import rekor_submission
    from client.sigstore_bundle import verify_bundle
    from client.sigstore_trust import tsa_chain_of

    request, envelope = rekor_submission(key, data, dsse=args.kind == "dsse",
                                         payload_type=args.payload_type)
    with _client(args, policy) as client:
        tle = client.rekor_submit(request)
        info = parse_leaf(base64.b64decode(tle["canonicalizedBody"]))
        if info is None or info.rekor is None:
            raise MalformedError("the log answered an entry that is not a Rekor v2 entry")
        stamp = client.timestamp(info.rekor.signature)
        root = client.get_json("/v1/sigstore/trusted-root.json")
    doc = bundle(tle, info.rekor, parse_envelope(envelope) if envelope else None, [stamp])
    out = Path(args.sigstore_bundle)
    if policy is not None:
        vb = verify_bundle(doc, policy, artifact=None if envelope else data,
                           tsa_chain=tsa_chain_of(root))
        _say(f"bundle verified: entry {vb.receipt.index} in checkpoint of size "
             f"{vb.receipt.checkpoint.size}, timestamped {vb.timestamps[0].isoformat()}")
    _write(out, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print(f"entry {tle['logIndex']}: Sigstore bundle saved to {out}")
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    """GET the log's Sigstore bundle of entry INDEX (a Rekor v2 entry)."""
    policy = _policy(args, required=False)
    with _client(args, policy) as client:
        doc = client.get_json(f"/v1/entries/{args.index}/sigstore-bundle")
    _write(Path(args.out), orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print(f"entry {args.index}: Sigstore bundle saved to {args.out} (not verified: see verify-bundle)")
    return EXIT_OK


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """Verify a Sigstore bundle under a tlog policy (witnesses, freshness, TPM included)."""
    from client.sigstore_bundle import verify_bundle
    from client.sigstore_trust import tsa_chain_of

    policy = _policy(args)
    assert policy is not None
    doc = orjson.loads(_read(args.bundle, "bundle"))
    artifact = _read(args.artifact, "artifact") if args.artifact else None
    chain = tsa_chain_of(orjson.loads(_read(args.trusted_root, "TrustedRoot"))) if args.trusted_root else None
    vb = verify_bundle(doc, policy, artifact=artifact, tsa_chain=chain)
    vr = vb.receipt
    stamped = f", timestamped {', '.join(t.isoformat() for t in vb.timestamps)}" if vb.timestamps else ""
    print(f"ok: entry {vr.index} is in {policy.origin} at size {vr.checkpoint.size} "
          f"(checked: inclusion, {', '.join(vr.checked)}), signed by {', '.join(vr.signers)}{stamped}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    policy = _policy(args)
    assert policy is not None
    receipt = parse_receipt(_read(args.receipt, "receipt"))
    envelope = _read(args.envelope, "envelope") if args.envelope else None
    artifact = _read(args.artifact, "artifact") if args.artifact else None
    signers = {_signer_digest(s) for s in args.signer or []}
    client = _client(args, policy) if args.online else None
    try:
        if client is not None:
            client.check_log_kind()
            if envelope is None and artifact is not None:
                info = parse_leaf(receipt.leaf)
                if info is not None and info.kind == 1:  # fetch the envelope by its address
                    envelope = client.attestation(info.record["attestation"])
        attestation = None
        if args.key_attestation:
            attestation = orjson.loads(_read(args.key_attestation, "key attestation"))
        elif policy.requires_tpm and client is not None:
            attestation = client.key_attestation()
        vr = verify_receipt(receipt, policy, envelope, artifact, signers=signers or None,
                            key_attestation=attestation)
        state = _state(args)
        note = ""
        if state is not None:
            prove = client.consistency_proof if client is not None else None
            adv = state.update(policy, vr.checkpoint, prove)
            if not adv.moved and adv.current.size != vr.checkpoint.size and client is None:
                note = f" (trusted state is at size {adv.current.size}; use --online to prove consistency)"
    finally:
        if client is not None:
            client.close()
    what = ", ".join(vr.checked) or "inclusion only"
    signed = f", signed by {', '.join(vr.signers)}" if vr.signers else ""
    print(f"ok: entry {vr.index} is in {policy.origin} at size {vr.checkpoint.size} "
          f"[{what}]{signed}{note}")
    return EXIT_OK


def _signer_digest(value: str) -> str:
    """A signer given as `sha256:<hex>` or as a PEM public key file."""
    if value.startswith("sha256:"):
        if len(value) != 71 or any(c not in "0123456789abcdef" for c in value[7:]):
            raise UsageError("--signer sha256: needs 64 lowercase hex digits")
        return value
    from client.attest import load_public_key

    return load_public_key(_read(value, "signer key").decode("ascii", "replace")).digest


def cmd_verify_receipt(args: argparse.Namespace) -> int:
    """The first, key-only form: `verify-receipt RECEIPT --vkey K [--entry LEAF]`."""
    entry = _read(args.entry, "entry") if args.entry is not None else None
    index, size = verify_receipt_doc(_read(args.receipt, "receipt"), args.vkey, entry)
    print(f"ok: entry {index} is included in the signed checkpoint of size {size}")
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    policy = _policy(args)
    assert policy is not None
    with _client(args, policy) as client:
        vc = _latest(client, policy, _state(args))
        if not 0 <= args.index < vc.size:
            raise UsageError(f"index {args.index} is not in 0..{vc.size - 1}")
        receipt = client.prove_entry(args.index, vc)
    doc = receipt.to_dict()
    info = parse_leaf(receipt.leaf)
    if info is not None:
        doc["record"] = info.record
    if args.receipt_out:
        _write(Path(args.receipt_out), orjson.dumps(receipt.to_dict(), option=orjson.OPT_INDENT_2))
    _emit(doc)
    return EXIT_OK


def cmd_prove(args: argparse.Namespace) -> int:
    policy = _policy(args)
    assert policy is not None
    with _client(args, policy) as client:
        vc = _latest(client, policy, _state(args))
        if args.index is not None:
            size = args.size or vc.size
            if size > vc.size or not 0 <= args.index < size:
                raise UsageError(f"need index < size <= {vc.size}")
            leaf = client.entry(args.index, size)
            proof = client.inclusion_proof(args.index, size, vc)
            root = client.prefix_root(size, vc)
            merkle.verify_inclusion(args.index, size, merkle.leaf_hash(leaf), proof, root)
            doc: dict[str, Any] = {"index": args.index, "tree_size": size,
                                   "leaf_hash": b64encode(merkle.leaf_hash(leaf)),
                                   "hashes": [b64encode(h) for h in proof], "root": b64encode(root)}
        else:
            old, new = args.consistency
            if not 0 <= old <= new <= vc.size:
                raise UsageError(f"need 0 <= M <= N <= {vc.size}")
            proof = client.consistency_proof(old, new, vc)
            old_root, new_root = client.prefix_root(old, vc), client.prefix_root(new, vc)
            merkle.verify_consistency(old, new, old_root, new_root, proof)
            doc = {"old_size": old, "new_size": new, "old_root": b64encode(old_root),
                   "new_root": b64encode(new_root), "hashes": [b64encode(h) for h in proof]}
        doc["checkpoint"] = vc.note.decode()
    _emit(doc)
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    """Search the log's index, then prove every hit: the index is derived data, never trusted."""
    policy = _policy(args)
    assert policy is not None
    field, term = next((f, getattr(args, f)) for f in ("subject", "signer", "predicate_type")
                       if getattr(args, f))
    count = 0
    with _client(args, policy) as client:
        vc = _latest(client, policy, _state(args))
        for index, leaf in client.search(field, term):
            if index >= vc.size:
                continue  # logged after the checkpoint we verified against
            receipt = client.prove_hit(field, term, index, leaf, vc)
            info = parse_leaf(leaf)
            sys.stdout.write(orjson.dumps({"index": index, "record": info.record if info else None,
                                           "receipt": receipt.to_dict()}).decode() + "\n")
            count += 1
            if args.limit and count >= args.limit:
                break
    _say(f"{count} verified match(es) at tree size {vc.size}")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    policy = _policy(args)
    assert policy is not None
    state = _state(args)
    with _client(args, policy) as client:
        trusted = state.trusted(policy) if state else None
        vc = _latest(client, policy, state)
        if not args.full:
            prev = trusted.size if trusted else None
            print(f"ok: {policy.origin} at size {vc.size} is consistent with the trusted size {prev}"
                  if prev is not None else f"ok: {policy.origin} at size {vc.size} (first seen)")
            return EXIT_OK
        resume = resume_path(state.dir, policy.origin) if state is not None else None
        if resume is not None:
            state.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if args.restart:
                resume.unlink(missing_ok=True)
        report = full_audit(client, vc, trusted=trusted, resume=resume,
                            progress=_progress_printer(args.quiet))
    if not args.quiet:
        sys.stderr.write("\n")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.kinds.items())) or "none"
    resumed = f" (resumed at {report.resumed_from})" if report.resumed_from else ""
    print(f"ok: replayed {report.replayed} entries{resumed}; every tile and the root of size "
          f"{report.size} recomputed ({report.rate:,.0f} entries/s, {report.seconds:.1f} s; {kinds})")
    return EXIT_OK


def cmd_monitor(args: argparse.Namespace) -> int:
    import signal

    from client.logs import setup_logging
    from client.monitor import Monitor, MonitorConfigError, load_monitor_config, monitor_config_toml
    from client.tls import TLSConfigError

    try:
        config = load_monitor_config(args.config)
        if args.print_config:
            sys.stdout.write(monitor_config_toml(config))
            return EXIT_OK
        setup_logging(config.log_format, "tlog-monitor")
        monitor = Monitor(config)
    except (MonitorConfigError, TLSConfigError) as exc:
        raise UsageError(str(exc)) from exc
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: monitor.stop.set())
    monitor.run()
    return EXIT_OK


def _key_args(values: list[str]) -> list[str]:
    """Verifier keys given inline or as @FILE (one key per line, `#` comments)."""
    out: list[str] = []
    for v in values:
        if v.startswith("@"):
            try:
                text = Path(v[1:]).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"{v}: {exc}") from exc
            out += vkey_lines(text)
        else:
            out.append(v)
    return out


def cmd_policy(args: argparse.Namespace) -> int:
    """Write a trust policy from keys published by the log and its witnesses."""
    from client.note import parse_vkey
    from client.policy import policy_toml

    try:
        log_keys = tuple(parse_vkey(k) for k in _key_args(args.log_key))
        witnesses = tuple(parse_vkey(k) for k in _key_args(args.witness_key or []))
        policy = TrustPolicy(
            origin=args.origin or log_keys[0].name, log_keys=log_keys,
            log_signatures=args.log_signatures, witnesses=witnesses,  # type: ignore[arg-type]
            witness_quorum=(args.witness_quorum or len(witnesses)) if witnesses else 0,
            max_age_seconds=args.max_age, url=args.url.rstrip("/") if args.url else None)
        policy_from_dict(policy.to_dict())  # the same checks as loading the file
    except (MalformedError, IndexError) as exc:
        raise UsageError(f"policy: {exc}") from exc
    text = policy_toml(policy, "written by tlog-client policy")
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        write_atomically(out, text.encode(), mode=0o644)
        print(f"wrote {out}")
    return EXIT_OK


def cmd_verify_evidence(args: argparse.Namespace) -> int:
    """Re-check split-view evidence offline, with only the log's key(s)."""
    from client.evidence import verify_evidence
    from client.note import parse_vkey

    if args.policy:
        policy = load_policy(args.policy)
        keys = list(policy.log_keys)
    elif args.vkey:
        keys = [parse_vkey(v) for v in args.vkey]
    else:
        raise UsageError("give --policy or --vkey (the log's public key)")
    try:
        doc = orjson.loads(_read(args.evidence, "evidence"))
    except orjson.JSONDecodeError as exc:
        raise MalformedError(f"evidence is not JSON: {exc}") from exc
    sv = verify_evidence(doc, keys)
    how = ("the same size with two roots" if sv.prefix_root is None else
           f"size {sv.smaller.size} has another root inside the signed tree of size {sv.larger.size}")
    print(f"PROVEN: {sv.origin} signed two views that cannot both be true: {how}")
    return EXIT_OK


def _progress_printer(quiet: bool) -> Callable[[int, int, float], None] | None:
    if quiet:
        return None
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(done: int, total: int, rate: float) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < (0.2 if tty else 5.0):
            return
        last[0] = now
        pct = 100.0 * done / total if total else 100.0
        bar = "#" * int(pct / 4)
        line = f"audit [{bar:<25}] {done:,}/{total:,} {pct:5.1f}% {rate:,.0f} entries/s"
        sys.stderr.write(("\r" + line) if tty else (line + "\n"))
        sys.stderr.flush()

    return show


# --- argument parsing -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlog-client", description=__doc__.split("\n")[0],
                                epilog="exit codes: 0 ok, 1 verification failed, 2 usage/input error, "
                                       "3 network error")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str,
            online: bool = True, policy: bool = True) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(func=func)
        if policy:
            s.add_argument("--policy", help="trust policy file (TOML or .json)")
        if online:
            s.add_argument("--log", help="log URL (default: the policy's url)")
            s.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
            s.add_argument("--retries", type=int, default=3, help="retries of transient failures")
            s.add_argument("--token-file", help="a private log's submitter token (`tlog token add`), "
                                                "sent with submissions; default: $TLOG_TOKEN")
            s.add_argument("--state", help="trust state directory")
            s.add_argument("--no-state", action="store_true", help="do not read or write trust state")
        return s

    s = add("submit", cmd_submit, "sign FILE locally, submit it, save and (with --policy) verify the receipt")
    s.add_argument("file")
    s.add_argument("--key", required=True, help="PEM private key (Ed25519, ECDSA P-256/P-384, RSA)")
    s.add_argument("--kind", choices=["dsse", "hashedrekord"], default="dsse",
                   help="dsse: FILE is the payload (an in-toto Statement by default); "
                        "hashedrekord: FILE is the artifact")
    s.add_argument("--payload-type", default=INTOTO_PAYLOAD_TYPE, help="DSSE payloadType")
    s.add_argument("--out", help="receipt file (default FILE.receipt.json)")
    s.add_argument("--envelope-out", help="DSSE envelope file (default: beside the receipt, .dsse.json)")
    s.add_argument("--sigstore-bundle", metavar="OUT",
                   help="submit through the Rekor v2 API instead (ECDSA or RSA keys) and write a "
                        "Sigstore v0.3 bundle, timestamped by the log's TSA, to OUT")

    b = add("bundle", cmd_bundle, "fetch the log's Sigstore bundle of a Rekor v2 entry")
    b.add_argument("index", type=int)
    b.add_argument("--out", required=True, help="bundle file to write")

    vb = add("verify-bundle", cmd_verify_bundle,
             "verify a Sigstore bundle under a tlog policy (offline)", online=False)
    vb.add_argument("bundle")
    vb.add_argument("--artifact", help="the signed artifact (message-signature bundles)")
    vb.add_argument("--trusted-root", help="a Sigstore TrustedRoot: also verify the bundle's RFC 3161 "
                                           "timestamps with its TSA chain")

    v = add("verify", cmd_verify, "verify a receipt (offline unless --online)")
    v.add_argument("receipt")
    v.add_argument("--envelope", help="the DSSE envelope: recompute the leaf and check its signatures")
    v.add_argument("--artifact", help="the artifact: check its digest is what was signed "
                                      "(a subject of the Statement, or the hashedrekord digest)")
    v.add_argument("--signer", action="append",
                   help="required signer: sha256:<hex> key digest or PEM public key file (repeatable)")
    v.add_argument("--key-attestation", help="the log's TPM key attestation (GET /v1/log/key-attestation), "
                                             "for a policy with tpm_aks (fetched with --online)")
    v.add_argument("--online", action="store_true",
                   help="also prove consistency with the trust state and fetch a missing envelope")

    r = add("verify-receipt", cmd_verify_receipt, "verify a receipt with only the log's key",
            online=False, policy=False)
    r.add_argument("receipt")
    r.add_argument("--vkey", action="append", required=True, help="the log's verifier key")
    r.add_argument("--entry", help="file holding the leaf bytes, compared with the receipt's")

    s = add("get", cmd_get, "fetch entry INDEX and prove it from tiles against the latest checkpoint")
    s.add_argument("index", type=int)
    s.add_argument("--receipt-out", help="also save a receipt for it")

    s = add("prove", cmd_prove, "compute and check a proof from tiles")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--index", type=int, help="inclusion proof of this entry")
    g.add_argument("--consistency", type=int, nargs=2, metavar=("M", "N"), help="consistency proof M -> N")
    s.add_argument("--size", type=int, help="tree size for --index (default: latest)")

    s = add("search", cmd_search, "find entries by subject, signer or predicate type; prove each hit")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--subject", help="<alg>:<hex> subject digest")
    g.add_argument("--signer", help="sha256:<hex> signer key digest")
    g.add_argument("--predicate-type", dest="predicate_type", help="in-toto predicate type URI")
    s.add_argument("--limit", type=int, default=0, help="stop after this many matches")

    s = add("audit", cmd_audit, "check the log only grew since the trusted checkpoint; "
            "--full replays every entry")
    s.add_argument("--full", action="store_true",
                   help="replay every entry, recompute every tile and the root")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--restart", action="store_true",
                   help="with --full: replay from entry 0, not from where the last audit stopped")

    s = add("monitor", cmd_monitor, "follow logs, report watched entries, gossip tree heads "
            "(docs/monitoring.md)", online=False, policy=False)
    s.add_argument("--config", required=True, help="monitor TOML configuration")
    s.add_argument("--print-config", action="store_true", help="print the effective settings and exit")

    s = add("policy", cmd_policy, "write a trust policy from the log's and witnesses' published keys",
            online=False, policy=False)
    s.add_argument("--log-key", action="append", required=True,
                   help="the log's verifier key, or @FILE with keys one per line (repeatable)")
    s.add_argument("--witness-key", action="append", help="a witness's cosignature/v1 key, or @FILE")
    s.add_argument("--witness-quorum", type=int, default=0, help="cosignatures required (0: all)")
    s.add_argument("--origin", help="the log's origin (default: its key's name)")
    s.add_argument("--url", help="the log's URL (for online checks and monitors)")
    s.add_argument("--max-age", type=int, help="newest trusted cosignature at most this many seconds old")
    s.add_argument("--log-signatures", choices=["all", "any"], default="all",
                   help="with several log keys: all must sign, or any one")
    s.add_argument("--out", default="-", help="file to write (default: stdout)")

    s = add("verify-evidence", cmd_verify_evidence, "re-check split-view evidence offline",
            online=False)
    s.add_argument("evidence", help="evidence JSON file (from a monitor)")
    s.add_argument("--vkey", action="append", help="the log's verifier key (instead of --policy)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        _say(str(exc))
        return EXIT_USAGE
    except ConsistencyError as exc:
        _say(f"LOG INCONSISTENT: {exc}")
        _emit({"evidence": exc.evidence()})
        return EXIT_FAILED
    except LogAPIError as exc:
        _say(str(exc))
        # The log refused what we sent (a submission): input error. A read that fails
        # (a missing tile, a 5xx): the log or the network, try again later.
        rejected = exc.method == "POST" and 400 <= exc.status < 500 and exc.status not in (408, 429)
        return EXIT_USAGE if rejected else EXIT_NETWORK
    except NetworkError as exc:
        _say(f"network error: {exc}")
        return EXIT_NETWORK
    except MalformedError as exc:
        _say(f"malformed input: {exc}")
        return EXIT_USAGE
    except TlogError as exc:
        _say(f"verification FAILED: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    except TimeoutError as exc:  # a trust-state lock held too long: try again later
        _say(str(exc))
        return EXIT_NETWORK
    except (ValueError, OSError) as exc:  # bad numbers, unwritable state directory, ...
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted (an audit --full resumes where it stopped)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
