"""Runs the plugin under plain CPython: the contract's Python types come from
`componentize-py bindings` over wit/plugin.wit (pure Python)."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_tool = Path(sys.executable).parent / "componentize-py"
_bindings = tempfile.mkdtemp(prefix="weir-plugin-bindings-")
subprocess.run([str(_tool) if _tool.exists() else (shutil.which("componentize-py") or "componentize-py"),
                "-d", str(ROOT / "wit"), "-w", "plugin", "bindings", _bindings], check=True, capture_output=True)
sys.path[:0] = [_bindings, str(ROOT)]
