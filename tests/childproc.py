"""How tests start a child process that must behave as under an interactive shell, whatever pytest inherited.

A background job (`nohup pytest &`, CI) starts with SIGINT ignored, and an ignored signal stays ignored
across fork and exec, so a child would never see Ctrl-C. ``default_sigint`` runs in the child before exec.
"""
from __future__ import annotations

import signal


def default_sigint() -> None:
    """In a child before exec: Ctrl-C handled as by an interactive shell (a SIG_IGN would survive exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# For subprocess.run / Popen: the child in a session of its own, with Ctrl-C's default handling.
INTERRUPTIBLE = {"start_new_session": True, "preexec_fn": default_sigint}
