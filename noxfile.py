"""Developer sessions: ``nox -s tests lint typecheck docs`` (and ``bench``)."""

from __future__ import annotations

from pathlib import Path

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
    session.run("ruff", "check", "trio_h2", "tests", "bench", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")  # the pytest plugin is typed against pytest
    session.run("mypy", "--strict", "trio_h2")


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx, warnings are errors."""
    session.install("-e", ".", "sphinx")
    session.run("python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs",
                "docs/_build/html")


@nox.session
def fuzz(session: nox.Session) -> None:
    """A long fuzz run, not part of the default sessions: ``nox -s fuzz``
    (5000 examples per fuzz test) or ``nox -s fuzz -- 20000``. Examples are
    random, not derandomized; failures are kept in .hypothesis/."""
    session.install("-e", ".[test]")
    examples = session.posargs[0] if session.posargs else "5000"
    session.run("python", "-m", "pytest", "tests/attacks/test_fuzz.py", "-x",
                "--hypothesis-show-statistics", env={"TRIO_H2_FUZZ_EXAMPLES": examples})


@nox.session
def bench(session: nox.Session) -> None:
    """``nox -s bench`` runs every script in bench/; ``nox -s bench -- compare
    --quick`` runs one, with its options. ``compare`` drives trio_h2 and
    Hypercorn with h2load (nghttp2-client), and trio_h2, Hypercorn and uvicorn
    with wrk over HTTP/1.1, and rewrites docs/performance_results*.inc, .md and
    the plots in docs/_static/."""
    session.install("-e", ".", "hypercorn", "uvicorn", "matplotlib")
    if session.posargs:
        name, *options = session.posargs
        session.run("python", f"bench/{name}.py", *options)
        return
    for script in sorted(Path("bench").glob("[!_]*.py")):
        session.run("python", str(script))
