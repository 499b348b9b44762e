"""auth's per-account back-off: free failures, then doubling locks up to a cap (the flow runs in the journey)."""

import pytest
from shopstream.auth import lockout_seconds


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(1, 0), (4, 0), (5, 1), (6, 2), (7, 4), (14, 512), (15, 900), (40, 900)],
)
def test_lockout_doubles_after_the_free_failures_up_to_the_cap(failures, seconds):
    assert lockout_seconds(failures, free=5, cap=900) == seconds
