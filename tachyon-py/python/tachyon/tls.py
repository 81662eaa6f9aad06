"""TLS 1.3 and mutual TLS for RPC over TCP.

:class:`TlsOptions` configures both ends: a server gives its ``cert`` and ``key`` (and a
``ca`` to require client certificates that CA signed: mutual TLS); a client gives the
``ca`` that signed the server's certificate (and its own ``cert`` and ``key`` for a
server that requires them). Each may be a path or the PEM text itself.

Inside a handler, :func:`peer_identity` names the client that called over mutual TLS.

>>> from tachyon import TlsOptions
>>> TlsOptions(ca="ca.pem", cert="client.pem", key="client.key").server_name is None
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Union

from . import _tachyon

__all__ = ["NameAttribute", "PeerIdentity", "TlsOptions", "peer_identity"]

PemSource = Union[str, bytes, "os.PathLike[str]"]
"""A PEM file's path, or its text (``str`` or ``bytes`` holding ``-----BEGIN``)."""


def _pem(source: Optional[PemSource]) -> Optional[bytes]:
    if source is None:
        return None
    if isinstance(source, bytes):
        if b"-----BEGIN" in source:
            return source
        source = os.fsdecode(source)
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode()
    with open(source, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class TlsOptions:
    """TLS settings for :func:`tachyon.connect` and :class:`tachyon.RpcServer`.

    Server: ``cert`` and ``key`` are required; ``ca`` turns on mutual TLS (clients
    without a certificate it signed are refused). Client: ``ca`` is required (the
    server's certificate must chain to it); ``cert`` and ``key`` present a client
    certificate; ``server_name`` overrides the host checked against the server's
    certificate."""

    ca: Optional[PemSource] = None
    cert: Optional[PemSource] = None
    key: Optional[PemSource] = None
    server_name: Optional[str] = None

    def _client(self) -> tuple[bytes, Optional[bytes], Optional[bytes], Optional[str]]:
        ca = _pem(self.ca)
        if ca is None:
            raise ValueError("a TLS client needs ca= (the CA that signed the server's certificate)")
        return (ca, _pem(self.cert), _pem(self.key), self.server_name)

    def _server(self) -> tuple[bytes, bytes, Optional[bytes]]:
        cert, key = _pem(self.cert), _pem(self.key)
        if cert is None or key is None:
            raise ValueError("a TLS server needs cert= and key=")
        return (cert, key, _pem(self.ca))


class NameAttribute(NamedTuple):
    """One attribute of a certificate subject, such as ``CN=client-a``."""

    oid: str
    """The attribute type's object identifier, dotted (``"2.5.4.3"`` for CN)."""
    name: Optional[str]
    """Its short name where it has a common one (``"CN"``, ``"O"``, ``"OU"``, ...)."""
    value: str
    """The value decoded by its string type (``#`` and hex when it is no string)."""


@dataclass(frozen=True)
class PeerIdentity:
    """The verified certificate of the client being served (mutual TLS), read by the
    core's X.509 parser.

    ``common_name`` is the subject's one CN attribute; a subject with several CNs is
    ambiguous and gives ``None`` (all of them are in ``subject``). ``subject`` is the
    distinguished name as written: its RDNs in order, each a tuple of attributes."""

    common_name: Optional[str]
    subject: tuple[tuple[NameAttribute, ...], ...] = ()
    dns_names: list[str] = field(default_factory=list)
    uri_names: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)
    email_addresses: list[str] = field(default_factory=list)
    certificate: bytes = b""

    @property
    def name(self) -> Optional[str]:
        """A SPIFFE id (``spiffe://`` URI name) if there is one, else the common name,
        else the first DNS name, else the first URI name."""
        for uri in self.uri_names:
            if uri.startswith("spiffe://"):
                return uri
        if self.common_name:
            return self.common_name
        for names in (self.dns_names, self.uri_names):
            if names:
                return names[0]
        return None

    def subject_values(self, name_or_oid: str) -> list[str]:
        """Every value of one subject attribute, by short name (``"OU"``) or OID."""
        return [a.value for rdn in self.subject for a in rdn if name_or_oid in (a.name, a.oid)]


def peer_identity() -> Optional[PeerIdentity]:
    """The client certificate of the call this thread is handling, or ``None`` (no
    mutual TLS, or not inside a handler). Handlers of a ``tcp://`` :class:`RpcServer`
    with ``tls=TlsOptions(..., ca=...)`` call it to learn who called."""
    raw = _tachyon.peer_identity()
    if raw is None:
        return None
    cn, subject, dns, uri, ips, emails, der = raw
    rdns = tuple(tuple(NameAttribute(*a) for a in rdn) for rdn in subject)
    return PeerIdentity(cn, rdns, list(dns), list(uri), list(ips), list(emails), bytes(der))
