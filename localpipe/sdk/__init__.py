"""Declarations a user writes a pipeline with: plain objects, no I/O beyond naming paths."""
