"""Shared test settings: caches go to a temporary folder, never the user's home."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path_factory.getbasetemp() / "gankit-cache"))
