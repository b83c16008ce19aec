"""The public API: what ``__all__`` names exists, and public classes are final
(composition, not subclassing, is the extension API)."""

from __future__ import annotations

import inspect
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
