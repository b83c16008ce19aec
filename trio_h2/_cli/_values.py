"""How each kind of option value is read: from a command-line string, and
from a TOML value. Each reader raises :exc:`ValueError` saying what was
expected and what it got, for the one error line."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import final

from .._core.limits import Budget
from ._binds import BadBind, Bind, parse_bind

__all__ = ["BINDS", "BUDGET", "FILE", "MODE", "Kind", "choice", "integer", "number", "switch",
           "text", "texts"]


@final
@dataclass(frozen=True, slots=True)
class Kind:
    """How one kind of value is read from a command-line string and from a TOML
    value; each raises :exc:`ValueError` saying what was expected."""

    metavar: str
    from_text: Callable[[str], object]
    from_toml: Callable[[object], object]
    flag: bool = False  # an on/off switch: --name / --no-name, no argument


def integer(low: int, high: int, unit: str = "a whole number") -> Kind:
    def check(value: int, shown: str) -> int:
        if not low <= value <= high:
            raise ValueError(f"expected {unit} from {low} to {high}, not {shown}")
        return value

    def from_text(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise ValueError(f"expected {unit}, not {text!r}")
        return check(int(text), repr(text))

    def from_toml(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {unit}, not {value!r}")
        return check(value, repr(value))

    return Kind("N", from_text, from_toml)


def number(*, positive: bool = False, metavar: str = "SECONDS",
            unit: str = "a number of seconds") -> Kind:
    """A finite float; > 0 if ``positive`` (Config checks its own fields' ranges)."""
    expected = f"{unit} > 0" if positive else unit

    def check(value: float, shown: str) -> float:
        if not math.isfinite(value) or (positive and value <= 0):
            raise ValueError(f"expected {expected}, not {shown}")
        return value

    def from_text(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected {expected}, not {text!r}") from None
        return check(value, repr(text))

    def from_toml(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected {expected}, not {value!r}")
        return check(float(value), repr(value))

    return Kind(metavar, from_text, from_toml)


def text(metavar: str) -> Kind:
    def from_toml(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, not {value!r}")
        return value

    return Kind(metavar, str, from_toml)


def choice(values: Sequence[str], prefix: str = "") -> Kind:
    """One of ``values``, in any case, optionally after ``prefix`` (Hypercorn's
    ``--verify-mode CERT_REQUIRED`` is ``required``)."""
    def from_text(text: str) -> str:
        value = text.lower().removeprefix(prefix)
        if value not in values:
            raise ValueError(f"expected one of {', '.join(values)}, not {text!r}")
        return value

    def from_toml(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected one of {', '.join(values)}, not {value!r}")
        return from_text(value)

    return Kind("|".join(values), from_text, from_toml)


def switch() -> Kind:
    def from_toml(value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, not {value!r}")
        return value

    return Kind("", bool, from_toml, flag=True)


def _budget_from_text(text: str) -> Budget:
    burst, slash, rate = text.partition("/")
    try:
        if not slash or not re.fullmatch(r"[0-9]+", burst.strip()):
            raise ValueError
        return Budget(int(burst), _finite(float(rate)))
    except ValueError:
        raise ValueError(f"expected BURST/PER_SECOND with BURST >= 1 and PER_SECOND >= 0, "
                         f"as in 1000/33, not {text!r}") from None


def _budget_from_toml(value: object) -> Budget:
    if isinstance(value, str):
        return _budget_from_text(value)
    if isinstance(value, dict) and set(value) == {"burst", "per_second"}:
        burst, rate = value["burst"], value["per_second"]
        if (isinstance(burst, int) and not isinstance(burst, bool)
                and isinstance(rate, int | float) and not isinstance(rate, bool)):
            return _budget_from_text(f"{burst}/{rate}")
    raise ValueError(f"expected \"BURST/PER_SECOND\" or {{burst = N, per_second = N}}, "
                     f"not {value!r}")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError
    return value


def texts(metavar: str, what: str) -> Kind:
    """A repeatable option's values: each use adds one (on the command line),
    or a string or a list of strings (in the file)."""

    def from_text(text: str) -> list[str]:
        if not text:
            raise ValueError(f"expected {what}, not an empty string")
        return [text]

    def from_toml(value: object) -> list[str]:
        values = [value] if isinstance(value, str) else value
        if (not isinstance(values, list) or not values
                or not all(isinstance(each, str) and each for each in values)):
            raise ValueError(f"expected {what} or a list of them, not {value!r}")
        return list(values)

    return Kind(metavar, from_text, from_toml)


def _binds_from_text(text: str) -> list[Bind]:
    try:
        return [parse_bind(text)]
    except BadBind as exc:
        raise ValueError(str(exc)) from None


def _binds_from_toml(value: object) -> list[Bind]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"expected an address or a list of addresses, not {value!r}")
    return [bind for text in texts for bind in _binds_from_text(text)]


def _mode_from_text(text: str) -> int:
    digits = text.lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,4}", digits):
        raise ValueError(f"expected an octal file mode such as 660, not {text!r}")
    return int(digits, 8)


def _mode_from_toml(value: object) -> int:
    # TOML has octal integers (0o660); a decimal 660 would be a surprise.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    if isinstance(value, str):
        return _mode_from_text(value)
    raise ValueError(f"expected an octal file mode, 0o660 or \"660\", not {value!r}")


BUDGET = Kind("BURST/PER_SECOND", _budget_from_text, _budget_from_toml)
BINDS = Kind("ADDRESS", _binds_from_text, _binds_from_toml)
FILE = text("FILE")
MODE = Kind("MODE", _mode_from_text, _mode_from_toml)
