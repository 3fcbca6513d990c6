"""A public bundle's passed check is remembered: a group's shards of one model are checked once.

The runtime reads a real store server on 127.0.0.1 (``tests.provider.faulty_store``) that records every
CID asked for and can answer 504 for chosen ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from marketplace.errors import WebiError
from marketplace.storage import open_store
from marketplace.storage.local import LocalStore
from provider.runtime import Runtime, RuntimeLimits
from tests.provider.faulty_store import faulty_store
from tests.provider.runtime.test_runtime import spec_for

CPU = torch.device("cpu")


def test_the_second_check_of_a_bundle_reads_nothing_and_other_terms_are_checked_afresh(tmp_path: Path,
                                                                                        bundles) -> None:
    local = LocalStore(tmp_path / "store")
    spec = spec_for(local, bundles["embed"], "embed")
    with faulty_store(local) as served, open_store(served.url) as store:
        runtime = Runtime(store, tmp_path / "cache", devices=[CPU])
        first = runtime.check_model(spec)
        read = len(served.asked)
        assert read > 0, "the first check reads the bundle's listing, config and headers"
        assert runtime.check_model(spec) is first
        assert runtime.check_job(spec) is not first  # no weight limit: another check, which reads again
        assert len(served.asked) > read
        read = len(served.asked)
        assert runtime.check_job(spec).weight_bytes == first.weight_bytes
        assert len(served.asked) == read
        # A tighter weight limit is a new question: refused, whatever was remembered under the default.
        strict = Runtime(store, tmp_path / "cache", devices=[CPU],
                         limits=RuntimeLimits(max_weight_bytes=1))
        with pytest.raises(WebiError, match="weight"):
            strict.check_model(spec)


def test_a_check_the_store_failed_is_not_remembered(tmp_path: Path, bundles) -> None:
    local = LocalStore(tmp_path / "store")
    spec = spec_for(local, bundles["embed"], "embed")
    with faulty_store(local) as served, open_store(served.url) as store:
        served.fail.add(spec.model)
        runtime = Runtime(store, tmp_path / "cache", devices=[CPU])
        with pytest.raises(WebiError):
            runtime.check_model(spec)
        served.fail.clear()
        assert runtime.check_model(spec).weight_bytes > 0  # asked again, and passed
