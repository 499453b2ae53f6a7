"""Test hook: die by SIGKILL at a named point of an MD run, to test resume at every moment.

``SUPERION_TEST_KILL_AT="phase:step"`` (unset in normal use) makes the process send itself
SIGKILL when it reaches :func:`kill_point` ``(phase, step)`` — as a ``kill -9`` or a lost node
would, with no chance to clean up. Phases, in the order one step passes them:

``observe``            the integrator reached ``step``; no observer ran yet
``frame``              the step's frame is buffered, not yet on disk
``checkpoint``         a checkpoint is due; nothing flushed yet
``h5-flush``           inside the trajectory flush: datasets resized, frames not yet written
``checkpoint-flushed`` trajectory and thermo log flushed, checkpoint not yet written
``checkpoint-tmp``     the new checkpoint is written under its temporary name, not yet renamed
``checkpoint-written`` right after the checkpoint was renamed into place
``complete``           the loop finished, nothing marked yet
``complete-metadata``  metadata.json says complete, complete.json not yet written

The environment is read at each call (a dictionary look-up, nothing next to an MD step), so a
test may set it in a forked child. Nothing here runs unless the variable is set.
"""

from __future__ import annotations

import os
import signal

ENV = "SUPERION_TEST_KILL_AT"


def kill_point(phase: str, step: int) -> None:
    """SIGKILL this process if ``$SUPERION_TEST_KILL_AT`` is ``f"{phase}:{step}"``."""
    target = os.environ.get(ENV)
    if target and target == f"{phase}:{int(step)}":
        os.kill(os.getpid(), signal.SIGKILL)
