"""Loading what the user named: the application, and the TLS certificate and key.

Each function raises :exc:`CommandError` with one line saying what is wrong
and where (the module's file and line, the certificate's path), never a
traceback.
"""

from __future__ import annotations

import importlib
import os
import re
import ssl
import sys
import traceback
from typing import cast

from .._apps.asgi import ASGIApp
from .._io.tls import h2_ciphers, server_ssl_context
from ._errors import EXIT_USAGE, CommandError, read_user_file
from ._options import AppSpec

__all__ = ["load_app", "load_tls"]

def load_app(spec: AppSpec) -> ASGIApp:
    """Import ``spec.module`` (current directory first on :data:`sys.path`) and
    return the attribute ``spec`` names. Raises :exc:`CommandError` if the
    module is missing or raises while importing, or the attribute is missing
    or not callable."""
    cwd = os.getcwd()
    if not sys.path or os.path.abspath(sys.path[0] or os.curdir) != cwd:
        sys.path.insert(0, cwd)
    try:
        obj: object = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_package_of(exc.name, spec.module):
            raise CommandError(f"cannot import module {spec.module!r}: {exc}") from None
        raise CommandError(f"error while importing module {spec.module!r}: "
                           f"{_describe(exc)}") from None
    except Exception as exc:  # the user's module raised: say what and where
        raise CommandError(f"error while importing module {spec.module!r}: "
                           f"{_describe(exc)}") from None
    for index, name in enumerate(spec.attributes):
        owner = (f"module {spec.module!r}" if index == 0
                 else repr(f"{spec.module}:{'.'.join(spec.attributes[:index])}"))
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise CommandError(f"{owner} has no attribute {name!r}") from None
        except Exception as exc:
            raise CommandError(f"error while looking up {name!r} in {owner}: "
                               f"{_describe(exc)}") from None
    if not callable(obj):
        raise CommandError(f"{str(spec)!r} is not an ASGI application: "
                           f"{type(obj).__name__} object is not callable")
    return cast(ASGIApp, obj)


def _is_package_of(name: str, module: str) -> bool:
    """``name`` is ``module`` or one of the packages it is inside."""
    return module == name or module.startswith(name + ".")


def _describe(exc: BaseException) -> str:
    """``Type: message``, and for errors raised in a file, where (the innermost
    frame that is a real file; SyntaxError already names its place)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        return text
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not frame.filename.startswith("<")]
    if frames:
        filename = frames[-1].filename
        if filename.startswith(os.getcwd() + os.sep):
            filename = os.path.relpath(filename)
        text += f" (at {filename}:{frames[-1].lineno})"
    return text


def load_tls(certfile: str, keyfile: str | None, *, http1: bool = True,
             password: str | None = None, ca_certs: str | None = None,
             verify_mode: ssl.VerifyMode = ssl.CERT_NONE,
             ciphers: str | None = None) -> ssl.SSLContext:
    """The server TLS context for ``certfile`` and ``keyfile`` (or the key in
    ``certfile``), decrypted with ``password``; client certificates checked
    against ``ca_certs`` as ``verify_mode`` says; TLS 1.2 suites narrowed to
    ``ciphers``. Raises :exc:`CommandError` if a file cannot be read, lacks
    what it should hold, the key does not match the certificate or cannot be
    decrypted, or ``ciphers`` leaves no suite HTTP/2 allows."""
    cert_pem = _read_pem(certfile, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise CommandError(f"no PEM certificate found in {certfile!r}")
    key_source = certfile if keyfile is None else keyfile
    key_pem = cert_pem if keyfile is None else _read_pem(keyfile, "key")
    if not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", key_pem):
        hint = " (pass the key with --keyfile)" if keyfile is None else ""
        raise CommandError(f"no PEM private key found in {key_source!r}{hint}")
    if password is None and re.search(rb"-----BEGIN (?:ENCRYPTED PRIVATE KEY|[A-Z ]+-----\r?\n"
                                      rb"Proc-Type: 4,ENCRYPTED)", key_pem):
        # Without a password OpenSSL would ask for one on the terminal, and a
        # service would wait forever.
        raise CommandError(f"the private key in {key_source!r} is encrypted: give its "
                           f"password with --keyfile-password", EXIT_USAGE)
    try:
        context = server_ssl_context(certfile, keyfile, http1=http1, password=password)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        what = repr(certfile) if keyfile is None else f"{certfile!r} with key {keyfile!r}"
        raise CommandError(f"cannot load TLS certificate {what}: {_ssl_detail(exc)}") from None
    if ciphers is not None:
        try:
            context.set_ciphers(h2_ciphers(ciphers))
        except ValueError as exc:
            raise CommandError(f"--ciphers: {exc}", EXIT_USAGE) from None
    if ca_certs is not None:
        if b"-----BEGIN CERTIFICATE-----" not in _read_pem(ca_certs, "CA certificates"):
            raise CommandError(f"no PEM certificate found in --ca-certs {ca_certs!r}")
        try:
            context.load_verify_locations(ca_certs)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot load --ca-certs {ca_certs!r}: "
                               f"{_ssl_detail(exc)}") from None
    context.verify_mode = verify_mode
    return context


def _ssl_detail(exc: Exception) -> str:
    return re.sub(r" \(_ssl\.c:\d+\)$", "", str(exc))


def _read_pem(path: str, what: str) -> bytes:
    return read_user_file(path, f"{what} file")
