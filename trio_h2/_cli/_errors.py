"""How the runner reports what the user got wrong: one line, an exit status."""

from __future__ import annotations

PROG = "trio_h2"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # what argparse uses for a malformed command line


class CommandError(Exception):
    """A problem with what the user gave us: reported as one line, exit ``status``.

    Status 2 (:data:`EXIT_USAGE`) for input that is malformed (a flag, a
    config-file key or value that does not parse or is out of range), 1
    (:data:`EXIT_FAILURE`) for well-formed input that cannot be used (a
    module that does not import, an address that cannot be bound)."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


# Config files, logging configurations, certificates and keys are a few KiB:
# reading more only matters for a wrong path such as /dev/zero.
READ_LIMIT = 1024 * 1024


def read_user_file(path: str, what: str) -> bytes:
    """The first :data:`READ_LIMIT` bytes of the file the user named as
    ``what`` (e.g. ``"config file"``). Raises :exc:`CommandError` (status 1),
    naming it, if it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read(READ_LIMIT)
    except OSError as exc:
        raise CommandError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
