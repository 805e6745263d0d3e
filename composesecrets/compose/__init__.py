"""Compose files: loading with positions, interpolation, schemas, merging and checks."""
