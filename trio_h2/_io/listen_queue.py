"""A listening socket's queue, as the socket closes: refuse new handshakes,
then take every connection already queued.

Closing a listening socket resets every connection still in its queue, and
the kernel completes a client's handshake before we accept it, so the client
may have sent its request already (a proxy in front then sees it fail: nginx
logs "connection reset by peer while reading response header"). Taking the
queue first leaves a window, between the last ``accept`` and the close, in
which a new handshake completes and is reset; on a loaded machine the
process can be descheduled inside it. On Linux a socket filter that drops
every packet closes the window: from the moment it is attached the listener
answers no SYN and completes no handshake, so a client that connects then
retries its SYN, meets the closed socket, and is refused before it has sent
anything (nginx tries the next upstream). What the queue held stays
untouched: those connections are established already.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import sys

log = logging.getLogger("trio_h2")

_SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>
# One classic BPF instruction: BPF_RET | BPF_K with k = 0, "keep 0 bytes" (drop).
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)


def refuse_handshakes(sock: socket.socket) -> bool:
    """From now on, drop every packet that reaches listening socket
    ``sock`` (Linux); True if done."""
    if not sys.platform.startswith("linux"):
        return False
    program = ctypes.create_string_buffer(_DROP_ALL, len(_DROP_ALL))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; },
    # native alignment; the kernel copies the program during the call.
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        log.debug("could not stop new handshakes on a listener being closed: %s", exc)
        return False
    return True


def take_queued(fd: int) -> list[socket.socket]:
    """The connections waiting in listening socket ``fd``'s queue, accepted
    without waiting (on a duplicate of ``fd``, as trio owns ``fd``), after
    :func:`refuse_handshakes`. Bounded by the queue's length (--backlog)."""
    taken: list[socket.socket] = []
    with socket.socket(fileno=os.dup(fd)) as listening:
        refuse_handshakes(listening)
        listening.setblocking(False)
        while True:
            try:
                sock, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return taken
            except OSError as exc:  # out of descriptors, say: the rest are reset
                log.warning("could not take the connections queued on a listener "
                            "being closed: %s", exc)
                return taken
            taken.append(sock)
