"""Measuring learned representations: nearest subspace (eq. 8) and friends."""
