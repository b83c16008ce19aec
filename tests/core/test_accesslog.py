"""The access log's format and escaping, alone (``_core.accesslog``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trio_h2 import Config
from trio_h2._core.accesslog import (
    _ATOM_VALUES,
    ATOMS,
    DEFAULT_FORMAT,
    atoms_table,
    check_format,
    escape,
)


def test_every_documented_atom_has_a_value_and_back() -> None:
    assert {name for name in ATOMS if not name.startswith("{")} == set(_ATOM_VALUES)


def test_docs_list_every_atom() -> None:
    # Regenerate with: python -c "from trio_h2._core.accesslog import atoms_table;
    # print(atoms_table(), end='')" > docs/access_log_atoms.inc
    documented = (Path(__file__).parent.parent.parent / "docs" / "access_log_atoms.inc").read_text()
    assert documented == atoms_table()


def test_default_format_is_gunicorns() -> None:
    assert Config().access_log_format == DEFAULT_FORMAT
    assert DEFAULT_FORMAT == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


@pytest.mark.parametrize(("log_format", "message"), [
    ("%(h)s %(nope)s", "unknown atom %(nope)"),
    ("%(h)", "incomplete format"),
    ("100% done", "is not a %-format"),
    ("%(h)d", "a real number is required"),
    ("%({X-Test}x)s", "unknown atom"),
])
def test_bad_format_is_a_value_error(log_format: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_format(log_format)
    with pytest.raises(ValueError, match=re.escape(message)):
        Config(access_log_format=log_format)


def test_escape_as_nginx() -> None:
    assert escape(b"plain /a?b=1 ~!") == "plain /a?b=1 ~!"
    assert escape(b'a"b\\c\nd\x1b[31m\x7f\xff') == "a\\x22b\\x5Cc\\x0Ad\\x1B[31m\\x7F\\xFF"
