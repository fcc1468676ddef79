#!/usr/bin/python3
"""Run the agent-scenario suite for tests/run.sh and end with "agent: N passed, N failed".

Same tests as `/usr/bin/python3 -m unittest discover -s tests/agent -v`; environment:
KVVM_ZIP (package under test), KVVM_ZIP2 (a higher version; built when absent), KVVM_BUILD.
"""

import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

suite = unittest.defaultTestLoader.discover(here, top_level_dir=here)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
passed = result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)
print("agent: {0} passed, {1} failed ({2} skipped)".format(passed, failed, len(result.skipped)))
sys.exit(0 if failed == 0 and result.testsRun > 0 else 1)
