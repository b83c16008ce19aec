"""How trio_h2 runs h2, and what it needs from h2 that h2 does not offer. Pure.

* :func:`server_connection`: h2 configured for one server connection.
* :func:`decode_settings_header`: the ``HTTP2-Settings`` of an ``Upgrade:
  h2c`` request, checked before the upgrade is answered (h2's
  ``initiate_upgrade_connection`` wants padding RFC 7540 omits, and would
  only fail after the ``101``).
* GOAWAY frames written by hand: h2's ``close_connection`` ends h2's side of
  the connection, so the first GOAWAY of a graceful close, and one after h2
  itself failed, cannot go through it.

What needs h2's or hpack's undocumented parts (the HPACK decoder that
reports failures with the code RFC 9113 requires and keeps no more than
``max_header_fields`` fields of a block, the frame buffer whose DATA frames
are cheap to ``repr``, the DATA and response HEADERS fast paths) is in
``_core.h2internals``, with the rest of them.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import cast

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from .._config import Config
from .h2internals import (
    Decoder,
    change_local_settings,
    replace_decoder,
    reset_on_body_length,
    use_frame_buffer,
    use_linear_huffman,
)

# nghttp2's limit on the entries of one SETTINGS frame (its default for
# nghttp2_option_set_max_settings); RFC 9113 defines 7 settings.
MAX_SETTINGS = 32

# RFC 7540 section 3.2.1: token68 in base64url, trailing '=' omitted (some
# clients keep them; they are accepted).
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*={0,2}")

# RFC 9218 section 2.1. h2 passes settings it does not know through as plain ints.
SETTINGS_NO_RFC7540_PRIORITIES = cast(h2.settings.SettingCodes, 0x9)


def server_connection(config: Config) -> h2.connection.H2Connection:
    """An h2 server connection as trio_h2 runs it: ``config``'s settings,
    h2's header validation off (``_core.headers`` does it, as stream errors), the
    :class:`Decoder`, ``_core.h2internals.FrameBuffer``, a body that
    disagrees with its content-length reset as a stream error
    (``_core.h2internals.reset_on_body_length``), and the linear
    ``_core.h2internals.HuffmanEncoder``."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            # Validated in _headers, as stream errors (see its docstring).
            validate_inbound_headers=False,
            # Response headers are validated and lowercased in _headers
            # before they reach h2 (more strictly than h2 would); h2's own
            # pass cost 14 us a response and could fail half-way through
            # HPACK encoding.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
    )
    change_local_settings(conn, {
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: config.max_concurrent_streams,
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: config.initial_window_size,
        h2.settings.SettingCodes.MAX_FRAME_SIZE: config.max_frame_size,
        h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: config.max_header_list_size,
        # RFC 9218 section 2.1: say so only if RFC 7540 signals are ignored.
        **({} if config.rfc7540_priorities else {SETTINGS_NO_RFC7540_PRIORITIES: 1}),
        # RFC 8441 section 3: WebSockets over extended CONNECT.
        **({h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1} if config.websocket else {}),
    })
    use_frame_buffer(conn)
    reset_on_body_length(conn)  # RFC 9113 section 8.1.1: a stream error
    use_linear_huffman(conn)
    replace_decoder(conn, Decoder(max_header_list_size=config.max_header_list_size,
                                  max_fields=config.max_header_fields))
    return conn


def decode_settings_header(value: bytes) -> bytes:
    """The SETTINGS payload in an ``HTTP2-Settings`` field value (RFC 7540
    section 3.2.1), every entry checked as h2 will check it. Raises
    :exc:`ValueError` saying what is wrong."""
    if _BASE64URL.fullmatch(value) is None:
        raise ValueError("HTTP2-Settings is not base64url")
    digits = value.rstrip(b"=")
    try:
        payload = base64.urlsafe_b64decode(digits + b"=" * (-len(digits) % 4))
    except binascii.Error:
        raise ValueError(f"HTTP2-Settings of {len(digits)} base64url digits") from None
    if len(payload) % 6:
        raise ValueError(f"HTTP2-Settings payload of {len(payload)} bytes, not 6 per setting")
    if len(payload) > 6 * MAX_SETTINGS:
        raise ValueError(f"HTTP2-Settings with more than {MAX_SETTINGS} settings")
    check = h2.settings.Settings()
    for offset in range(0, len(payload), 6):
        code = int.from_bytes(payload[offset:offset + 2], "big")
        try:  # Settings validates each value as a SETTINGS frame's (RFC 9113 6.5.2)
            check[code] = int.from_bytes(payload[offset + 2:offset + 6], "big")
        except h2.exceptions.InvalidSettingsValueError as exc:
            raise ValueError(f"HTTP2-Settings: {exc}") from None
    return payload


def goaway(last_stream_id: int, code: ErrorCodes) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = code
    return bytes(frame.serialize())


def code_name(code: object) -> str:
    try:
        return ErrorCodes(code).name  # type: ignore[arg-type]
    except ValueError:
        return f"0x{code:x}" if isinstance(code, int) else repr(code)
