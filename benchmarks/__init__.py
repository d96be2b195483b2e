"""Benchmarks of diffnotes: each prints a speed ratio against a baseline run in the same process.

Run them with ``make bench`` (or ``python -m benchmarks``). Timed numbers never appear in the unit
tests: a ratio measured in one run on one machine is meaningful, an absolute time is not.
"""
