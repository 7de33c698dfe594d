"""TLS for the bench: the client context, and a throwaway certificate for a spawned cluster.

`chatctl bench --tls` verifies the server as any client would (the system's
CAs, or `--ca FILE`), so a run measures the TLS a real client pays, not a
shortcut. With `--spawn --tls` the bench makes a self-signed certificate for
the host it connects to, valid for two days, and trusts exactly that. It is
made with `cryptography` where that is installed (it is in the test extra,
not a runtime dependency), else with the `openssl` command; a P-256 key, so
that 500 handshakes at setup cost little.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path


class CertificateError(RuntimeError):
    """No way to make a certificate here (neither cryptography nor openssl), or making one failed."""


def client_context(ca: str | None = None) -> ssl.SSLContext:
    """A verifying client context: `ca` (a PEM file of CAs or of the server's own certificate), else the system's."""
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _names(host: str) -> tuple[list[str], list[str]]:
    """(IP addresses, DNS names) the certificate is for: the host, and the loopback names besides."""
    ips, dns = ["127.0.0.1"], ["localhost"]
    if _is_ip(host):
        if host not in ips:
            ips.append(host)
    elif host not in dns:
        dns.append(host)
    return ips, dns


def make_self_signed(directory: Path, host: str = "127.0.0.1", *, use: str = "auto") -> tuple[Path, Path]:
    """Write cert.pem and key.pem (mode 0600) for `host` into directory; use: auto, cryptography or openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    if use == "auto":
        try:
            import cryptography  # noqa: F401
            use = "cryptography"
        except ImportError:
            use = "openssl"
    if use == "cryptography":
        _with_cryptography(cert, key, host)
    elif use == "openssl":
        _with_openssl(cert, key, host)
    else:
        raise ValueError(f"use must be auto, cryptography or openssl, not {use!r}")
    key.chmod(0o600)
    return cert, key


def _with_cryptography(cert_path: Path, key_path: Path, host: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    ips, dns = _names(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _with_openssl(cert_path: Path, key_path: Path, host: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError("making a certificate for --spawn --tls needs the `cryptography` package or the "
                               "`openssl` command; or start the cluster with your own and pass --ca")
    ips, dns = _names(host)
    san = ",".join([f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns])
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName={san}",
           "-keyout", str(key_path), "-out", str(cert_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise CertificateError(f"openssl could not make a certificate: {proc.stderr.strip()}")
