"""Proxy tasks: small models trained in jitted JAX to score candidate optimizers."""
