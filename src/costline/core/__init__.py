"""Pure domain of costline: money, units, usage, price records, resolution and the cost function.

Nothing in this package performs I/O or reads the clock; time is always passed in.
"""
