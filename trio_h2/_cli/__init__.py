"""The command-line runner: ``python -m trio_h2 [MODULE:APP] [options]`` (or ``trio-h2``).

One module per job: :mod:`._options` reads the command line and the TOML
config file into one checked :class:`~._options.Options`; :mod:`._binds`
parses and opens the ``--bind`` addresses (TCP, ``unix:``, ``fd://``);
:mod:`._loading` imports the app and loads TLS; :mod:`._runner` serves, in
one process or as a supervisor of workers. :func:`main` is the entry point
(``[project.scripts]``).

Errors in what the user gave us never show a traceback: each is one line on
stderr, ``trio_h2: error: <what went wrong>``. Exit status 2 means the
input itself is malformed (as argparse does): unknown option or config key,
a value that does not parse or is out of range, options that do not go
together. Exit status 1 means well-formed input that could not be used: a
module that cannot be imported, an unreadable file, an address that cannot
be bound, the app's lifespan startup failing. Anything else is a bug and
keeps its traceback.
"""

from ._runner import main as main

__all__ = ["main"]
