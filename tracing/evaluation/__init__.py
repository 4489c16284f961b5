"""Traced evaluations: cases, the bounded-concurrency runner, scorers, reports and comparison."""
