"""TLS as the operator's machine sees it on a server's communication port: versions and certificate."""

from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
import warnings

from xsoar_mt.checks.verdicts import TlsObservation

_OLD = (("TLSv1", "TLSv1"), ("TLSv1.1", "TLSv1_1"))


def _client(minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we read the certificate; trust is not what this check judges
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


def _handshake(context: ssl.SSLContext, address: str, port: int, timeout: float) -> tuple[str | None, bytes]:
    with socket.create_connection((address, port), timeout=timeout) as raw, context.wrap_socket(raw) as tls:
        return tls.version(), tls.getpeercert(binary_form=True) or b""


def accepts_old(address: str, port: int, timeout: float) -> tuple[str, ...]:
    """The versions below TLS 1.2 the server completes a handshake with (a client pinned to each)."""
    # Pinning TLS 1.0/1.1 is the point here. A filter, not catch_warnings: that one is not thread-safe.
    warnings.filterwarnings("ignore", message=r"ssl\.TLSVersion\.TLSv1", category=DeprecationWarning)
    accepted = []
    for label, attribute in _OLD:
        version = getattr(ssl.TLSVersion, attribute)
        try:
            context = _client(version, version)
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            _handshake(context, address, port, timeout)
        except (OSError, ssl.SSLError, ValueError):
            continue
        accepted.append(label)
    return tuple(accepted)


def observe_tls(address: str, port: int, timeout: float = 5.0) -> TlsObservation:
    try:
        negotiated, der = _handshake(_client(ssl.TLSVersion.TLSv1_2), address, port, timeout)
    except ssl.SSLError:
        negotiated, der = None, b""
    except OSError as exc:
        return TlsObservation(None, error=f"cannot connect to {address}:{port} from here ({exc})")
    old = accepts_old(address, port, timeout)
    if not der:
        return TlsObservation(negotiated, old)
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    now = datetime.datetime.now(datetime.UTC)
    days = (
        (cert.not_valid_after_utc - now).days
        if cert.not_valid_after_utc >= now
        else -((now - cert.not_valid_after_utc).days + 1)
    )
    return TlsObservation(
        negotiated,
        old,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        days_left=days,
        fingerprint=hashlib.sha256(der).hexdigest(),
    )
