"""The results history: a database of runs across commits and devices, its change points, its dashboard."""
