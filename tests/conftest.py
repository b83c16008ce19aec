"""Shared test helpers. Servers and clients come from trio_h2's own pytest plugin
(h2_server, h2_client, h2_ca), the way users meet them."""

from __future__ import annotations

import os
import shutil

import pytest

ON_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str, packages: str = "curl nghttp2-client") -> str:
    """Path of an external tool. Missing: skip, except on CI, where it fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {packages})"
        if ON_CI:
            pytest.fail(message + " and CI=true", pytrace=False)
        pytest.skip(message)
    return path
