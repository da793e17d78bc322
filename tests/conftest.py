"""Shared test settings: caches go to a temporary folder, never the user's home, and no test
reaches the network (file: URLs still work, so download code is tested on local files)."""

import urllib.error
import urllib.request

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    # Session-scoped so that it is in place before module-scoped fixtures that train or evaluate.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_CACHE", str(tmp_path_factory.mktemp("gankit-cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _no_network():
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        target = url.full_url if isinstance(url, urllib.request.Request) else str(url)
        if not target.startswith("file:"):
            raise urllib.error.URLError("network disabled in tests")
        return real_urlopen(url, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(urllib.request, "urlopen", local_only)
        yield
