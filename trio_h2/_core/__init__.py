"""The sans-IO protocol cores: bytes in, exchanges started, bytes out, deadlines,
drain. Nothing in this package imports trio (tests/core/test_core.py checks)."""
