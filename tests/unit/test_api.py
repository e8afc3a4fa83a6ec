"""The package's documented exports: ``from snapshot_tool import compare, record`` gives the
library functions, whatever was imported before (``snapshot_tool.record`` and
``snapshot_tool.compare`` are also module names)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("before", ["", "import snapshot_tool.api", "import snapshot_tool.cli",
                                    "from snapshot_tool.compare import compare_outputs"])
def test_package_exports_are_the_api_functions(before: str) -> None:
    code = (f"{before}\n"
            "from snapshot_tool import compare, record\n"
            "import snapshot_tool.api as api\n"
            "assert record is api.record and compare is api.compare, (record, compare)\n"
            "from snapshot_tool import compare as again\n"
            "assert again is api.compare\n"
            "print('OK')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr
