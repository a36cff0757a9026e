"""What the load generator itself costs: SIPp's CPU around each benchmark step.

On a 2-core machine the SIPp UAC (and UAS) share the cores with the server under test.
When a fast server (Kamailio) fails a step while using well under its share of the CPU,
the SIPp processes are what ran out; printing their CPU next to the server's makes that
visible in every run instead of a guess in the notes.

The UAC of a step is a child of this process, reaped when the step ends, so its CPU is the
step's growth of ``RUSAGE_CHILDREN`` (the server is a child too, but it is reaped only when
the benchmark stops it).  A long-running UAS is measured through /proc like the server.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass, field


def _reaped_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoadGenCpu:
    """CPU seconds of the load generator per step, keyed by rate."""

    #: Extra long-lived SIPp processes (a UAS): returns their CPU seconds so far.
    extra: Callable[[], float] | None = None
    steps: dict[float, tuple[float, int]] = field(default_factory=dict)

    def measure(self, rate: float, run: Callable[[], object], completed: Callable[[object], int]) -> object:
        """Run one step; remember (SIPp CPU seconds, completed calls) for *rate*."""
        before = _reaped_children_cpu() + (self.extra() if self.extra else 0.0)
        result = run()
        spent = _reaped_children_cpu() + (self.extra() if self.extra else 0.0) - before
        self.steps[rate] = (spent, completed(result))
        return result

    def describe(self, rate: float) -> str:
        spent, done = self.steps.get(rate, (0.0, 0))
        per_1000 = spent * 1000 / done if done else float("nan")
        return f"SIPp CPU {spent:.2f} s ({per_1000:.2f} s/1000)"
