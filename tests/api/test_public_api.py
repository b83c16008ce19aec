"""The public API: what ``__all__`` names exists, and public classes are final
(composition, not subclassing, is the extension API)."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

import pytest

import trio_h2
import trio_h2.testing

# Meant to be caught (a base of the client's errors) or implemented as a
# type (fixture protocols): these are not final on purpose.
OPEN_FOR_EXTENSION = {"H2ClientError", "H2ServerFactory", "H2ClientFactory"}


@pytest.mark.parametrize("module", [trio_h2, trio_h2.testing], ids=lambda m: m.__name__)
def test_public_classes_are_final(module: ModuleType) -> None:
    for name in module.__all__:
        obj = getattr(module, name)  # every name in __all__ exists
        if inspect.isclass(obj) and name not in OPEN_FOR_EXTENSION:
            assert getattr(obj, "__final__", False), f"{module.__name__}.{name} is not @final"


def test_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    assert trio_h2.__version__ == version("trio_h2")


def test_serving_does_not_load_trustme(tmp_path: Path) -> None:
    """trustme and cryptography cost about 15 MiB in every process (every
    worker); only ``--self-signed`` needs them, so serving does not load
    them."""
    import subprocess
    import sys

    from tests.support.processes import environment

    probe = ("import sys, trio_h2, trio_h2._cli._runner, trio_h2._apps.demo; "
             "print(sorted(m for m in ('trustme', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=environment(tmp_path), check=True, timeout=60).stdout
    assert out.strip() == "[]"
