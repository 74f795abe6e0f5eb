"""Evaluation gates: floors, challenger vs champion, slices and latency, before any promotion."""
