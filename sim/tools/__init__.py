"""Experiment tooling on top of the engine: the CLI, sweeps, capacity search, CI gates,
plots, benchmarks and run output."""
