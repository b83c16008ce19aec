"""Servers and clients come from trio_h2's own pytest plugin (h2_server,
h2_client, h2_ca), the way users meet them. Helpers shared by test files are
in ``tests/support/``; this file holds only fixtures and hooks for all of them."""
