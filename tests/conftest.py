"""Shared test settings: the two hypothesis profiles.

`dev` is quick for the edit-test loop; `ci` runs more examples, derandomised so a CI failure
reproduces. CI sets CI=true; TINYLLM_HYPOTHESIS_PROFILE overrides either way.
"""
import os

from hypothesis import HealthCheck, settings

# Numba compiles on first call, so no per-example deadline. The backend fixtures below are
# function-scoped on purpose: they set a process-wide switch that holds for every example.
_quiet = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("dev", max_examples=15, deadline=None, suppress_health_check=_quiet)
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=_quiet,
)
_default = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"
settings.load_profile(os.environ.get("TINYLLM_HYPOTHESIS_PROFILE", _default))
