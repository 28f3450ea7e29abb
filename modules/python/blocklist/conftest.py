# Makes the SDK's test helper and the WIT's bindings (`wit_world`) importable by the tests.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "sdk"))

import cfhost_testing  # noqa: E402

cfhost_testing.use_bindings(Path(__file__).parents[3] / "wit")
