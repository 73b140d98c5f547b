"""Makes the SDK importable under plain CPython: the contract's Python types
come from `componentize-py bindings` (pure Python), generated once per run."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _componentize_py() -> str:
    here = Path(sys.executable).parent / "componentize-py"
    return str(here) if here.exists() else (shutil.which("componentize-py") or "componentize-py")


_bindings = tempfile.mkdtemp(prefix="weir-py-bindings-")
subprocess.run([_componentize_py(), "-d", str(REPO / "wit" / "v0.2.0"), "-w", "plugin", "bindings", _bindings],
               check=True, capture_output=True)
sys.path[:0] = [_bindings, str(REPO / "plugins" / "sdk-python"), str(REPO / "examples" / "plugins" / "python" / "tenant")]
