"""The `net` fixture of the API tests: whole peers whose REST API a test can start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apinet import ApiNetwork


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[ApiNetwork]:
    network = ApiNetwork(tmp_path)
    yield network
    await network.close()
