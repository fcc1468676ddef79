#!/usr/bin/python3
"""Run one Python test folder for tests/run.sh and end with "<name>: N passed, N failed".

usage: /usr/bin/python3 tests/pysuite.py NAME FOLDER
The same tests as `/usr/bin/python3 -m unittest discover -s FOLDER -p 'test_*.py' -v`.
A folder that ran no test fails: a suite that silently finds nothing proves nothing.
"""

import os
import sys
import unittest

name, folder = sys.argv[1], os.path.abspath(sys.argv[2])
sys.path.insert(0, folder)
suite = unittest.defaultTestLoader.discover(folder, pattern="test_*.py", top_level_dir=folder)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
passed = result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)
print("{0}: {1} passed, {2} failed ({3} skipped)".format(name, passed, failed, len(result.skipped)))
sys.exit(0 if failed == 0 and result.testsRun > 0 else 1)
