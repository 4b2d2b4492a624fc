"""Helpers the tests share: the float64 oracle, loopback servers, subprocess runners, tolerances."""
