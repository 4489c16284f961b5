"""Settings shared by the property-based (hypothesis) suites in tests/fuzz.

CI runs each property a bounded number of times (the whole folder stays under a minute);
`AGENTKIT_FUZZ_EXAMPLES=10000 pytest tests/fuzz` turns it into a local soak. Under CI the
examples are derandomised, so a red run is reproducible; locally each run explores anew.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SOAK_EXAMPLES = int(os.environ.get("AGENTKIT_FUZZ_EXAMPLES", "0"))


def fuzz(ci_examples: int) -> settings:
    """Hypothesis settings: `ci_examples` runs in CI, AGENTKIT_FUZZ_EXAMPLES for a soak."""
    return settings(
        max_examples=SOAK_EXAMPLES or ci_examples,
        deadline=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
