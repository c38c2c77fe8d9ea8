"""Helpers of bench/run: servers, load generators, seeding and reports."""
