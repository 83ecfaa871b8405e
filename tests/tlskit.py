"""A throwaway PKI for the TLS tests: a CA, server certificates for 127.0.0.1, client
certificates by common name, written as PEM files (keys 0600)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_file: Path

    def issue(self, dir: Path, name: str, *, server: bool, days: int = 1) -> tuple[Path, Path]:
        """A leaf certificate and its key, as (cert file, key file) named after `name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return write_pair(dir, name, cert, key)


def write_pair(dir: Path, name: str, cert: x509.Certificate,
               key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    dir.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = dir / f"{name}.crt", dir / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_file, key_file


def make_ca(dir: Path, name: str = "tlog test CA") -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, _ = write_pair(dir, name.replace(" ", "-"), cert, key)
    return CA(key, cert, cert_file)


def client_ssl(ca: CA, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """What a client verifies the server with (this CA only), showing `cert` if given."""
    ctx = ssl.create_default_context(cafile=str(ca.cert_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def served_fingerprint(host: str, port: int, ca: CA) -> bytes:
    """The DER of the certificate a TLS server shows right now (a fresh connection)."""
    import socket

    with socket.create_connection((host, port), timeout=10) as raw, \
            client_ssl(ca).wrap_socket(raw, server_hostname=host) as s:
        return s.getpeercert(binary_form=True) or b""
