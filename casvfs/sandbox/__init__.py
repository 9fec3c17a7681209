"""Sandboxes over a tree digest: stage it (FUSE or an export), run a command in
it isolated by bubblewrap, capture what it left (see :mod:`casvfs.sandbox.run`).

Needs the ``fuse`` extra for FUSE staging, and bubblewrap (``bwrap``) on PATH.
"""

from casvfs.sandbox.execute import ActionCache, Executed, LocalActionCache, execute, put_action
from casvfs.sandbox.run import DEFAULT_ENV, REASON_NO_SANDBOX, RunResult, SandboxError, bwrap_command, run
from casvfs.sandbox.stage import STAGES, StageKind

__all__ = [
    "DEFAULT_ENV",
    "REASON_NO_SANDBOX",
    "STAGES",
    "ActionCache",
    "Executed",
    "LocalActionCache",
    "RunResult",
    "SandboxError",
    "StageKind",
    "bwrap_command",
    "execute",
    "put_action",
    "run",
]
