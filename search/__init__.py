"""Regularized evolution over DSL programs."""
