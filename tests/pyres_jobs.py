"""
A job class for the pyres worker in tests/test_pyres.py (pyres imports job
classes by name; Pace never does).
"""

results: list = []


class Adder:
    queue = "math"

    @staticmethod
    def perform(a, b):
        results.append(a + b)
