"""The fixtures of the faces' tests: `net`, whole peers whose REST API a test can start;
`ring`, peers of this process for the CLI's processes to talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apinet import ApiNetwork
from peernet import PeerNetwork


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[ApiNetwork]:
    network = ApiNetwork(tmp_path)
    yield network
    await network.close()


@pytest.fixture
async def ring(tmp_path: Path) -> AsyncIterator[PeerNetwork]:
    network = PeerNetwork(tmp_path / "nodes")
    yield network
    await network.close()
