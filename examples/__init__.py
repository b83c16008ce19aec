"""Runnable trio_h2 examples; see examples/README.md. Run them from the repository root."""
