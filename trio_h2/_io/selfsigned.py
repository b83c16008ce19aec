"""``--self-signed``: a throwaway CA and a server certificate for trying TLS locally.

Browsers speak HTTP/2 only over TLS, so seeing the demo over HTTP/2 in a
browser needs a certificate the browser can be told to trust. trustme makes a
CA and a certificate it signs, both for this run only: the CA's private key
never leaves memory, so trusting its certificate trusts nothing that outlives
the process. The server's certificate and key are written to a directory the
caller owns (the runner's private temporary directory), where worker
processes can load them too; the CA certificate goes next to them for
``curl --cacert``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from typing import final

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["SelfSigned", "make_self_signed"]

# What the certificate always covers: the names a local browser or curl uses.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# Binding to these means "every interface"; they name no host to certify.
WILDCARDS = ("0.0.0.0", "::")


@final
@dataclass(frozen=True, slots=True)
class SelfSigned:
    """Where the files are, and what to tell a client so that it trusts them."""

    names: tuple[str, ...]
    ca_file: str
    """The CA certificate (PEM), for ``curl --cacert`` or a browser's trust store."""
    cert_file: str
    """The server's private key and certificate chain (PEM), for ``--certfile``."""
    spki_sha256: str
    """base64 of the SHA-256 of the server certificate's SubjectPublicKeyInfo,
    as Chromium's ``--ignore-certificate-errors-spki-list`` takes it."""

    def name_for(self, host: str) -> str:
        """The name to put in a URL for a server bound to ``host``: the host
        itself if the certificate names it, except loopback addresses and
        wildcards, which are reached as ``localhost``."""
        if host in WILDCARDS or host not in self.names:
            return "localhost"
        try:
            return "localhost" if ipaddress.ip_address(host).is_loopback else host
        except ValueError:  # a host name
            return host

    def instructions(self, url: str) -> list[str]:
        """Lines telling a user how to fetch ``url`` trusting this certificate:
        curl, Chromium, or importing the CA."""
        return [
            f"self-signed certificate for {', '.join(self.names)}; "
            f"its CA (made for this run only) is in {self.ca_file}",
            f"  curl --cacert {self.ca_file} {url}",
            # A Chromium already running would open the URL in its own process,
            # ignoring the flag: a fresh profile starts a new one.
            f"  chromium --user-data-dir=$(mktemp -d) "
            f"--ignore-certificate-errors-spki-list={self.spki_sha256} {url}",
            f"  or import {self.ca_file} as a trusted authority in your browser "
            "(a new one each run)",
        ]


def make_self_signed(directory: str, hosts: list[str]) -> SelfSigned:
    """Make a CA and a certificate for :data:`LOCAL_NAMES` and ``hosts`` (the
    ``--bind`` hosts; wildcards are left out), and write them into
    ``directory``, which should be private to this user. Raises
    :exc:`OSError` if the files cannot be written, :exc:`ValueError` if a
    host is not a name a certificate can hold (bad IDNA)."""
    names = tuple(dict.fromkeys([*LOCAL_NAMES, *(host for host in hosts
                                                 if host not in WILDCARDS)]))
    ca = trustme.CA(organization_name="trio_h2 --self-signed")
    leaf = ca.issue_cert(*names, organization_name="trio_h2 --self-signed")
    ca_file = os.path.join(directory, "ca.pem")
    cert_file = os.path.join(directory, "server.pem")
    ca.cert_pem.write_to_path(ca_file)
    # Created 0600, not chmod-ed after: the key is never readable by others.
    fd = os.open(cert_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as file:
        file.write(leaf.private_key_and_cert_chain_pem.bytes())
    certificate = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return SelfSigned(names, ca_file, cert_file,
                      base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"))

