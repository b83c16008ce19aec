"""Developer sessions: ``nox -s tests lint typecheck docs`` (and ``bench``)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]  # bench: on request
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (needs curl and nghttp2-client on PATH)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "trio_h2", "tests", "bench", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy")
    session.run("mypy", "--strict", "trio_h2")


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx, warnings are errors."""
    session.install("-e", ".", "sphinx")
    session.run("python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs",
                "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks in bench/: ``nox -s bench -- backpressure`` (default: all)."""
    session.install("-e", ".")
    names = session.posargs or ["backpressure"]
    for name in names:
        session.run("python", f"bench/{name}.py")
