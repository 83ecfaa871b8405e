"""Configuration of `tlog serve`: one frozen dataclass, loaded from TOML and flags, strictly."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from client.envconfig import env_settings
from client.tls import ServerTLS
from tlog.storage import DEFAULT_MAP_SIZE


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type, or out of range."""


@dataclass(frozen=True)
class ServeConfig:
    data_dir: str = "./tlog-data"
    """Directory holding the LMDB environment and the log key (created 0700 on first run)."""
    listen: str = "127.0.0.1:8080"
    """HOST:PORT to bind; port 0 picks a free port and prints it."""
    origin: str = ""
    """Checkpoint origin and key name; empty: use the stored one, or generate one on first run."""
    allow_raw: bool = False
    """Accept `{"raw": ...}` entries whose bytes are logged as given (tests and benchmarks)."""
    workers: int = 1
    """HTTP worker processes; each sequences into the shared LMDB (single writer at a time)."""
    max_batch: int = 1024
    """Most entries integrated in one LMDB transaction and one checkpoint."""
    max_delay_ms: float = 0.0
    """How long an idle sequencer waits for a batch to fill, in milliseconds. Under load
    batches form by themselves while the previous one commits, so the default is no wait."""
    body_timeout: float = 30.0
    """Seconds a client may take to send a request body (408 after that)."""
    max_connections: int = 2048
    """Concurrent connections per worker; more get 503 from the HTTP server."""
    header_timeout: float = 10.0
    """Seconds a client may take from connecting (or from the first byte of a request on a
    kept-alive connection) to the end of its request headers; then the connection is
    closed, so idle and trickling (slowloris) connections cannot hold `max_connections`."""
    max_connections_per_client: int = 0
    """Open connections one client may hold per worker (0: no cap); IPv6 addresses count by
    `rate_ipv6_prefix`. Leave 0 behind a reverse proxy, where every connection comes from
    the proxy."""
    forwarded_allow_ips: str = ""
    """Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` the log believes
    (comma-separated addresses or networks, or "*"); from them the client's address is the
    header's, for rate limits and the access log. Empty: the headers are ignored, since any
    process on the host could otherwise name any address."""
    submit_timeout: float = 30.0
    """Seconds a submission waits for its batch to commit before the client gets 503."""
    max_pending: int = 16384
    """Submissions waiting per worker before new ones get 503 (back-pressure)."""
    max_body_bytes: int = (64 << 20) + (256 << 10)
    """Largest accepted request body, in bytes (413 above it): this bounds the size of a DSSE
    envelope (64 MiB by default, plus room for its verifier keys). Bodies over 1 MiB are
    spooled to a temporary file in the data dir rather than held in memory."""
    map_size: int = DEFAULT_MAP_SIZE
    """LMDB map size in bytes (the most the database can grow to; sparse on disk)."""
    access_log: bool = False
    """Log every HTTP request (method, path, status, latency, request id; costs throughput)."""
    log_format: str = "text"
    """`text` (one human line per event) or `json` (one JSON object per line, with the request
    id: what log shippers in containers want)."""
    sequencer_socket: str = ""
    """Unix socket between the HTTP workers and the sequencer; empty: <data_dir>/sequencer.sock."""
    tpm: str = ""
    """TCTI of the TPM holding the ECDSA checkpoint key (`tlog tpm init`); empty: no TPM.
    Checkpoints are then signed by the Ed25519 key and by the TPM key."""
    tpm_timeout: float = 10.0
    """Seconds one TPM command may take before the batch fails (503 signer_unavailable)."""
    rotation_key_file: str = ""
    """A second Ed25519 key file for the same origin (`tlog keygen`); while set, every
    checkpoint is signed by both keys, so clients and witnesses can move to the new key
    before the old one is retired (docs/operations.md, "Rotating the log key")."""
    frozen: bool = False
    """Refuse new entries (403 `log_frozen`) while serving reads, proofs and fresh cosigned
    checkpoints: the last state of a retired shard."""
    successor: str = ""
    """URL of the log that takes new entries once this one is frozen (in `/v1/log` and in
    `log_frozen` errors)."""
    public_url: str = ""
    """The URL clients reach this log at (behind a proxy or CDN); empty: the listening URL.
    Sigstore's SigningConfig names it, and the TrustedRoot's `baseUrl` uses it when it holds
    the origin (sigstore-js requires the checkpoint signer's name inside `baseUrl`)."""
    submit_tokens_file: str = ""
    """A file of submitters' token hashes (`tlog token add`); set: submissions need
    `Authorization: Bearer <token>` (401 `unauthorized` without one), reads stay public.
    Re-read within a second of a change: revoking needs no restart."""
    read_tokens_file: str = ""
    """A file of readers' token hashes (`tlog token add`, same format); set: every request but
    `/healthz` needs a reader's or a submitter's token, or a client certificate (401
    `unauthorized`): a private log. Re-read within a second of a change."""
    tls_cert_file: str = ""
    """PEM certificate chain to serve HTTPS with (and `tls_key_file`); empty: plain HTTP (a
    reverse proxy terminates TLS). Both are re-read on SIGHUP (docs/tls.md)."""
    tls_key_file: str = ""
    """PEM private key of `tls_cert_file` (mode 0600)."""
    tls_client_ca_file: str = ""
    """PEM CA bundle for mutual TLS: clients are asked for a certificate, and one issued by
    these CAs identifies a submitter by its common name (as a token does). Set: submissions
    need a client certificate or a submitter's token. Re-read on SIGHUP."""
    rate_write: float = 0.0
    """Submissions per second per client (0: unlimited); over it, 429 `rate_limited`."""
    rate_write_burst: int = 20
    """Submissions a client may make at once before `rate_write` applies."""
    rate_query: float = 0.0
    """Proofs, searches, feeds, receipts and entries per second per client (0: unlimited)."""
    rate_query_burst: int = 100
    rate_tile: float = 0.0
    """Checkpoint and tile reads per second per client (0: unlimited)."""
    rate_tile_burst: int = 400
    rate_ipv4_prefix: int = 32
    """IPv4 addresses in one such prefix count as one client."""
    rate_ipv6_prefix: int = 64
    """IPv6 addresses in one such prefix count as one client (a host usually holds a /64)."""
    cors_allow_origin: str = "*"
    """`Access-Control-Allow-Origin` on every GET answer: "*" (reads are public: web pages
    anywhere, such as an exported explorer, may read them), one origin
    ("https://explorer.example.com"), or "" for none (a private log: pages on other sites
    that its users visit must not read it through their browsers)."""
    tsa_url: str = ""
    """Base URL of the RFC 3161 time-stamping authority (`python -m tsa serve`) whose
    timestamps go into Sigstore bundles; empty: bundles carry none (docs/sigstore.md)."""
    tsa_chain_file: str = ""
    """The TSA's certificate chain (PEM, signing certificate first), for the TrustedRoot;
    empty: fetched from `<tsa_url>/api/v1/timestamp/certchain` at start."""
    witnesses: tuple[tuple[str, str], ...] = ()
    """Witnesses as (URL, cosignature/v1 verifier key), from `[[witness]]` tables."""
    witness_quorum: int = 0
    """Cosignatures a checkpoint needs before it is published (k of n; 0: all witnesses)."""
    witness_tokens: tuple[tuple[str, str], ...] = ()
    """(witness URL, file holding the bearer token the log sends it), from `token_file` in
    `[[witness]]` tables: for witnesses that take add-checkpoint only from known logs."""
    witness_ca_file: str = ""
    """PEM CA bundle the log trusts for https witnesses; empty: the system's CAs."""
    witness_client_cert_file: str = ""
    """PEM client certificate the log shows witnesses that ask for one (mutual TLS)."""
    witness_client_key_file: str = ""
    """PEM private key of `witness_client_cert_file` (mode 0600)."""
    witness_timeout: float = 5.0
    """Seconds one add-checkpoint request to a witness may take."""
    witness_interval: float = 1.0
    """Least seconds between two checkpoints sent to the witnesses (sequencing never waits)."""
    witness_wait: bool = True
    """Answer submitters only once their entry is in a cosigned checkpoint (or the timeout)."""
    witness_startup_check: bool = True
    """At start, refuse a data dir older than (or forked from) what the witnesses co-signed
    (a restored backup): serving it would fork the log. Off only for drills and tests."""
    witness_wait_timeout: float = 10.0
    """Seconds a submitter waits for cosignatures before getting the log-signed receipt."""
    storage: str = "lmdb"
    """`lmdb`: the embedded log in `data_dir` (one machine). `s3`: tiles, bundles, envelopes
    and the checkpoint in an S3-compatible bucket, the tree head and indexes in PostgreSQL,
    for front ends and sequencers on many machines (docs/scale-out.md)."""
    role: str = "all"
    """With `storage = "s3"`: `all` (HTTP front end and a sequencer candidate), `frontend`
    (HTTP only), or `sequencer` (a sequencer candidate; `listen` serves its /healthz and
    /metrics)."""
    s3_endpoint: str = ""
    """URL of the S3 API (for example https://s3.eu-west-1.amazonaws.com or a Ceph RGW)."""
    s3_bucket: str = ""
    """The bucket; readers and a CDN may read the log from it directly (docs/scale-out.md)."""
    s3_prefix: str = ""
    """Key prefix of this log inside the bucket ("" or for example `logs/attest1/`)."""
    s3_region: str = "us-east-1"
    """Region used for request signing."""
    s3_access_key_id: str = ""
    """Access key ID (or the AWS_ACCESS_KEY_ID environment variable)."""
    s3_secret_access_key_file: str = ""
    """File holding the secret access key (or the AWS_SECRET_ACCESS_KEY environment variable)."""
    postgres_dsn: str = ""
    """libpq connection string of the log's database, for example `host=db dbname=tlog
    user=tlog`; give the password through PGPASSWORD or a PGPASSFILE, not here."""
    lease_seconds: float = 3.0
    """The sequencer's lease: a standby takes over this long after the leader stops renewing."""
    sequencer_listen: str = "127.0.0.1:0"
    """With `role = "all"`: where the sequencer serves its /healthz and /metrics."""

    def __post_init__(self) -> None:
        # From JSON (worker processes) the pairs arrive as lists.
        object.__setattr__(self, "witnesses", tuple(tuple(w) for w in self.witnesses))
        object.__setattr__(self, "witness_tokens", tuple(tuple(w) for w in self.witness_tokens))
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"listen: expected HOST:PORT, got {self.listen!r}")
        checks = {
            "workers": 1 <= self.workers <= 64,
            "max_batch": 1 <= self.max_batch <= 65536,
            "max_delay_ms": 0 <= self.max_delay_ms <= 10_000,
            "max_pending": 1 <= self.max_pending <= 1 << 22,
            "submit_timeout": 0.1 <= self.submit_timeout <= 3600,
            "body_timeout": 0.1 <= self.body_timeout <= 3600,
            "max_connections": 1 <= self.max_connections <= 1 << 20,
            "header_timeout": 0.1 <= self.header_timeout <= 3600,
            "max_connections_per_client": 0 <= self.max_connections_per_client <= 1 << 20,
            "max_body_bytes": 1024 <= self.max_body_bytes <= 1 << 30,
            "map_size": 1 << 20 <= self.map_size <= 1 << 44,
            "witness_quorum": 0 <= self.witness_quorum <= len(self.witnesses),
            "witness_timeout": 0.1 <= self.witness_timeout <= 600,
            "tpm_timeout": 0.1 <= self.tpm_timeout <= 600,
            "witness_interval": 0.01 <= self.witness_interval <= 3600,
            "witness_wait_timeout": 0.1 <= self.witness_wait_timeout <= 3600,
            **{f"rate_{c}": 0 <= getattr(self, f"rate_{c}") <= 1e6 for c in ("write", "query", "tile")},
            **{f"rate_{c}_burst": 1 <= getattr(self, f"rate_{c}_burst") <= 1 << 20
               for c in ("write", "query", "tile")},
            "rate_ipv4_prefix": 8 <= self.rate_ipv4_prefix <= 32,
            "rate_ipv6_prefix": 16 <= self.rate_ipv6_prefix <= 128,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"{key}: value {getattr(self, key)!r} is out of range")
        for name in ("public_url", "tsa_url"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise ConfigError(f"{name}: expected an http(s) URL, got {value!r}")
        if self.cors_allow_origin not in ("", "*") and not re.fullmatch(
                r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", self.cors_allow_origin):
            raise ConfigError(f"cors_allow_origin: expected \"*\", \"\" or an origin such as "
                              f"https://explorer.example.com, got {self.cors_allow_origin!r}")
        for cert, key, what in ((self.tls_cert_file, self.tls_key_file, "tls_cert_file/tls_key_file"),
                                (self.witness_client_cert_file, self.witness_client_key_file,
                                 "witness_client_cert_file/witness_client_key_file")):
            if bool(cert) != bool(key):
                raise ConfigError(f"{what}: set both a certificate and a key file, or neither")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError("tls_client_ca_file: needs tls_cert_file and tls_key_file (HTTPS)")
        if self.read_tokens_file and not (self.submit_tokens_file or self.tls_client_ca_file):
            raise ConfigError("read_tokens_file: a private log needs submit_tokens_file or "
                              "tls_client_ca_file too, to say who may submit (readers may not)")
        if self.forwarded_allow_ips and not re.fullmatch(r"\*|[0-9A-Fa-f.:/]+(,[0-9A-Fa-f.:/]+)*",
                                                         self.forwarded_allow_ips.replace(" ", "")):
            raise ConfigError(f"forwarded_allow_ips: expected \"*\" or comma-separated addresses or "
                              f"networks of reverse proxies, got {self.forwarded_allow_ips!r}")
        if self.successor and not self.successor.startswith(("http://", "https://")):
            raise ConfigError(f"successor: expected an http(s) URL, got {self.successor!r}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format: expected text or json, got {self.log_format!r}")
        if self.storage not in ("lmdb", "s3"):
            raise ConfigError(f"storage: expected lmdb or s3, got {self.storage!r}")
        if self.role not in ("all", "frontend", "sequencer"):
            raise ConfigError(f"role: expected all, frontend or sequencer, got {self.role!r}")
        if not 0.5 <= self.lease_seconds <= 600:
            raise ConfigError(f"lease_seconds: value {self.lease_seconds!r} is out of range")
        if self.storage == "s3":
            for key in ("s3_endpoint", "s3_bucket", "postgres_dsn"):
                if not getattr(self, key):
                    raise ConfigError(f"{key}: required with storage = \"s3\"")
            if not self.s3_endpoint.startswith(("http://", "https://")):
                raise ConfigError(f"s3_endpoint: expected an http(s) URL, got {self.s3_endpoint!r}")

    def server_tls(self) -> ServerTLS | None:
        """The TLS files the HTTP workers serve with (None: plain HTTP)."""
        if not self.tls_cert_file:
            return None
        return ServerTLS(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)

    @property
    def quorum(self) -> int:
        return self.witness_quorum or len(self.witnesses)

    def socket_path(self) -> str:
        if self.sequencer_socket:
            return self.sequencer_socket
        return str(Path(self.data_dir).resolve() / "sequencer.sock")

    @property
    def host(self) -> str:
        host = self.listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _coerce(name: str, value: Any, want: type) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ConfigError(f"{name}: expected {want.__name__}, got {type(value).__name__}")
    return value


Pairs = tuple[tuple[str, str], ...]


def _witnesses(tables: Any, path: str | Path) -> tuple[Pairs, Pairs]:
    """`[[witness]]` tables: url and vkey (a cosignature/v1 key) or vkey_file (a file holding
    it, relative to the config file), each checked, and optionally token_file (the bearer
    token to send it); returns the (url, vkey) and the (url, token file) pairs."""
    from client.errors import MalformedError
    from client.keyfile import vkey_lines
    from client.note import ALG_COSIGNATURE_V1, parse_vkey

    if not isinstance(tables, list):
        raise ConfigError(f"{path}: witness must be an array of tables ([[witness]])")
    out: list[tuple[str, str]] = []
    tokens: list[tuple[str, str]] = []
    for i, t in enumerate(tables):
        where = f"{path}: witness[{i}]"
        keys = set(t) - {"token_file"} if isinstance(t, dict) else set()
        if keys not in ({"url", "vkey"}, {"url", "vkey_file"}):
            raise ConfigError(f"{where}: needs url and one of vkey, vkey_file (and optionally token_file)")
        url, vkey = t["url"], t.get("vkey")
        if "vkey_file" in t:
            if not isinstance(t["vkey_file"], str):
                raise ConfigError(f"{where}.vkey_file: must be a path")
            try:
                keys = vkey_lines((Path(path).resolve().parent / t["vkey_file"]).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where}.vkey_file: {exc}") from exc
            if len(keys) != 1:
                raise ConfigError(f"{where}.vkey_file: must hold one key, holds {len(keys)}")
            vkey = keys[0]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url: must be an http(s) URL")
        try:
            v = parse_vkey(vkey) if isinstance(vkey, str) else None
        except MalformedError as exc:
            raise ConfigError(f"{where}.vkey: {exc}") from exc
        if v is None or v.alg != ALG_COSIGNATURE_V1:
            raise ConfigError(f"{where}.vkey: must be a cosignature/v1 (type 0x04) key")
        if any(v.name == parse_vkey(k).name for _, k in out):
            raise ConfigError(f"{where}: two witnesses named {v.name!r}")
        out.append((url.rstrip("/"), vkey))
        if "token_file" in t:
            if not isinstance(t["token_file"], str) or not t["token_file"]:
                raise ConfigError(f"{where}.token_file: must be a path")
            tokens.append((url.rstrip("/"), str(Path(path).resolve().parent / t["token_file"])))
    return tuple(out), tuple(tokens)


ENV_PREFIX = "TLOG_"
_TABLES = ("witnesses", "witness_tokens")  # settings that come from [[witness]] tables


def load_config(path: str | Path | None, overrides: dict[str, Any],
                env: dict[str, str] | None = None) -> ServeConfig:
    """Defaults, then the TOML file's `[log]` table, then `TLOG_<KEY>` environment variables
    (what containers set), then command-line overrides."""
    values: dict[str, Any] = {}
    types = {f.name: {"str": str, "int": int, "bool": bool, "float": float}[str(f.type)]
             for f in fields(ServeConfig) if f.name not in _TABLES}
    if path is not None:
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        unknown_tables = set(doc) - {"log", "witness"}
        if unknown_tables:
            raise ConfigError(f"{path}: unknown table or key {sorted(unknown_tables)[0]!r}")
        values["witnesses"], values["witness_tokens"] = _witnesses(doc.get("witness", []), path)
        for key, value in doc.get("log", {}).items():
            if key not in types:
                raise ConfigError(f"{path}: unknown key log.{key}")
            values[key] = _coerce(f"log.{key}", value, types[key])
    values.update(env_settings(os.environ if env is None else env, ENV_PREFIX, types, ConfigError,
                               ENV_IGNORED))
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value, types[key])
    return replace(ServeConfig(), **values)


# Variables with the prefix that are not settings: the server's own hand-over to its workers.
ENV_IGNORED = frozenset({"TLOG_SERVE_CONFIG", "TLOG_LEADER_CONFIG", "TLOG_VKEY", "TLOG_EXTRA_VKEYS",
                         "TLOG_RATE_BUCKETS", "TLOG_DATA", "TLOG_CLIENT_STATE"})


def config_toml(config: ServeConfig) -> str:
    """The effective configuration as a `[log]` file (it holds no secrets: keys live in files,
    and a password in the PostgreSQL DSN is redacted)."""
    lines = ["[log]"]
    for f in fields(ServeConfig):
        if f.name in _TABLES:
            continue
        value = getattr(config, f.name)
        if f.name == "postgres_dsn":
            value = redact_dsn(value)
        lines.append(f"{f.name} = {json.dumps(value)}")
    token_files = dict(config.witness_tokens)
    for url, vkey in config.witnesses:
        lines += ["", "[[witness]]", f"url = {json.dumps(url)}", f"vkey = {json.dumps(vkey)}"]
        if url in token_files:
            lines.append(f"token_file = {json.dumps(token_files[url])}")
    return "\n".join(lines) + "\n"


def redact_dsn(dsn: str) -> str:
    """A libpq DSN (key=value or URL form) without its password."""
    dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1<redacted>", dsn)
    return re.sub(r"(postgres(?:ql)?://[^:/@]*:)[^@]*@", r"\1<redacted>@", dsn)
