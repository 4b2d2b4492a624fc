"""Every backend against the float64 oracle and each other: shapes, forward, gradients, optimizer, one iteration."""
