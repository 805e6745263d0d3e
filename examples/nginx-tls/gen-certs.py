#!/usr/bin/env python3
"""Generate the TLS material of the guide's nginx example with the `cryptography` library.

Writes, next to this script (or into --dir):
  root-ca.key, root-ca.crt   a root CA (CA:TRUE, pathlen 1, keyCertSign/cRLSign)
  site.key, site.crt         a server certificate for CN=localhost with the subject
                             alternative names DNS:localhost and IP:127.0.0.1, signed by
                             the root CA (CA:FALSE, serverAuth)
Keys are written with mode 0600 (created with O_EXCL, then renamed into place); nothing
is printed but file names. Existing files are kept when they still form a valid chain
that is good for at least 30 more days, unless --force is given. --new-site keeps the root
CA and writes a new site key and certificate signed by it (for a rotation: clients that
trust the CA accept both pairs). All of these files are gitignored: generate them, never
commit them.

Run it with the project's virtual environment: `.venv/bin/python examples/nginx-tls/gen-certs.py`
(or `make nginx-certs`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_BITS = 2048  # the guide uses 4096; 2048 keeps generation fast and is still sound
CA_DAYS = 3650
SITE_DAYS = 750
MIN_REMAINING = dt.timedelta(days=30)
FILES = ("root-ca.key", "root-ca.crt", "site.key", "site.crt")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Docker"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically: a new file with the final mode, then rename over the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # the umask may have removed bits
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"wrote {path} (mode {mode:04o})")


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _sign(
    builder: x509.CertificateBuilder, key: CertificateIssuerPrivateKeyTypes
) -> x509.Certificate:
    return builder.sign(key, hashes.SHA256())


def make_root(now: dt.datetime) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = _name("Swarm Secret Example CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    return key, _sign(builder, key)


def make_site(
    now: dt.datetime, ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SITE_DAYS))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return key, _sign(builder, ca_key)


def existing_chain_ok(directory: Path, now: dt.datetime) -> bool:
    """True when all four files exist, the keys match and site.crt is signed by the CA."""
    try:
        paths = {name: directory / name for name in FILES}
        if not all(p.is_file() for p in paths.values()):
            return False
        ca_cert = x509.load_pem_x509_certificate(paths["root-ca.crt"].read_bytes())
        site_cert = x509.load_pem_x509_certificate(paths["site.crt"].read_bytes())
        ca_key = serialization.load_pem_private_key(paths["root-ca.key"].read_bytes(), None)
        site_key = serialization.load_pem_private_key(paths["site.key"].read_bytes(), None)
        if ca_key.public_key() != ca_cert.public_key():
            return False
        if site_key.public_key() != site_cert.public_key():
            return False
        site_cert.verify_directly_issued_by(ca_cert)
        for cert in (ca_cert, site_cert):
            if cert.not_valid_after_utc - now < MIN_REMAINING:
                return False
    except (ValueError, TypeError, OSError, InvalidSignature):
        return False
    return all((paths[name].stat().st_mode & 0o077) == 0 for name in ("root-ca.key", "site.key"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where to write the files (default: this script's directory)",
    )
    parser.add_argument("--force", action="store_true", help="regenerate even if valid")
    parser.add_argument(
        "--new-site",
        action="store_true",
        help="keep the root CA; write a new site key and certificate signed by it",
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    if args.new_site:
        if not existing_chain_ok(directory, now):
            print(f"{directory}: no valid root CA to sign with; run without --new-site first")
            return 1
        ca_key = serialization.load_pem_private_key((directory / "root-ca.key").read_bytes(), None)
        if not isinstance(ca_key, rsa.RSAPrivateKey):
            print(f"{directory}/root-ca.key: not an RSA key")
            return 1
        ca_cert = x509.load_pem_x509_certificate((directory / "root-ca.crt").read_bytes())
        site_key, site_cert = make_site(now, ca_key, ca_cert)
        _write(directory / "site.key", _key_pem(site_key), 0o600)
        _write(directory / "site.crt", _cert_pem(site_cert), 0o644)
        return 0
    if not args.force and existing_chain_ok(directory, now):
        print(f"{directory}: root-ca.crt, site.crt and their keys are present and valid")
        return 0
    ca_key, ca_cert = make_root(now)
    site_key, site_cert = make_site(now, ca_key, ca_cert)
    _write(directory / "root-ca.key", _key_pem(ca_key), 0o600)
    _write(directory / "root-ca.crt", _cert_pem(ca_cert), 0o644)
    _write(directory / "site.key", _key_pem(site_key), 0o600)
    _write(directory / "site.crt", _cert_pem(site_cert), 0o644)
    return 0


if __name__ == "__main__":
    sys.exit(main())
