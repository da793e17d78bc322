"""Shared test settings: caches go to a temporary folder, never the user's home."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    # Session-scoped so that it is in place before module-scoped fixtures that train or evaluate.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_CACHE", str(tmp_path_factory.mktemp("gankit-cache")))
        yield
