"""Sphinx configuration for the trio_h2 documentation.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from importlib.metadata import version as _version

project = "trio_h2"
author = "the trio_h2 authors"
copyright = "the trio_h2 authors"
release = _version("trio_h2")
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

# No intersphinx: the docs build offline.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_type_aliases = {"ASGIApp": "ASGIApp"}

nitpicky = False
default_role = "literal"
exclude_patterns = ["_build"]

html_theme = "alabaster"
html_theme_options = {
    "description": "An HTTP/2 server for trio",
    "fixed_sidebar": False,
}
html_static_path: list[str] = []

# Long signatures (serve, Config) get one parameter per line.
python_maximum_signature_line_length = 88
