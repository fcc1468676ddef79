#!/usr/bin/python3
"""Runs the agent scenarios (unittest) and ends with "agent: N passed, N failed"."""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py", top_level_dir=here)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
print(f"agent: {result.testsRun - bad - len(result.skipped)} passed, {bad} failed"
      + (f", {len(result.skipped)} skipped" if result.skipped else ""))
sys.exit(1 if bad else 0)
