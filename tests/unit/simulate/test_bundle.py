"""The simulation's policy bundle is valid and narrows access by risk."""

from __future__ import annotations

from tessera.policy.bundle import bundle_from_files
from tessera.policy.compiled import compile_bundle
from tessera.simulate.bundle import RESPONSE_POLICIES, simulation_bundle


def test_the_bundle_compiles_against_the_starter_schema() -> None:
    compiled = compile_bundle(bundle_from_files(simulation_bundle()))
    ids = set(compiled.policies)
    assert ids >= RESPONSE_POLICIES
    assert {"sim-read-own-segment", "forbid-cross-segment"} <= ids
