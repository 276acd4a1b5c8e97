"""Reproduction of issue 12, defect 9: a step's logs are unbounded.

The fix caps each step's log per stream at LOCALPIPE_MAX_LOG_BYTES bytes, keeping the head and
the tail with a line saying what was cut. (The disk-full part of the issue is not tested here.)
"""

from __future__ import annotations

import pytest

from tests.defect_helpers import step_rows

LINES = 5_000_000 // 34 + 1  # numbered lines of 34 bytes: 5 MB

CHATTY = """
import sys
out = sys.stdout
for i in range({lines}):
    out.write(f"line {{i:010d}} of the output....\\n")
"""

PIPELINE = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("chatty.py", name="chatty", source_directory="src")])
"""

CAP = 65536


@pytest.mark.timeout(120)
def test_a_step_log_is_capped_keeping_its_head_and_tail(ws, project, localpipe):
    """Defect 9: with LOCALPIPE_MAX_LOG_BYTES=65536, a step printing 5 MB of numbered lines
    completes, and its stdout.log holds at most 65536 + 1024 bytes: it starts with the first
    lines, ends with the last one, and a line in it says how many "bytes cut"."""
    project("src/chatty.py", CHATTY.format(lines=LINES))
    project("p.py", PIPELINE)
    proc = localpipe("submit", "p.py", env={"LOCALPIPE_MAX_LOG_BYTES": str(CAP)}, timeout=100)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert step_rows(ws.root, 1)["chatty"][0] == "Completed"

    log = ws.state_dir / "runs" / "1" / "chatty" / "stdout.log"
    size = log.stat().st_size
    assert size <= CAP + 1024, f"stdout.log is {size} bytes for a cap of {CAP}"
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    assert lines[0] == "line 0000000000 of the output...."
    assert lines[1] == "line 0000000001 of the output...."
    assert lines[-1] == f"line {LINES - 1:010d} of the output....", lines[-3:]
    assert [line for line in lines if "bytes cut" in line], "no line says what was cut"
