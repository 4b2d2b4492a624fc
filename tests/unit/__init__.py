"""Framework-free units: spec, data, noise, timing, weights format, parsers, metrics, results."""
