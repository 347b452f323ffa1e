"""The `net` fixture of the sharing tests: whole peers on loopback gRPC, stopped after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peernet import PeerNetwork


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[PeerNetwork]:
    network = PeerNetwork(tmp_path / "nodes")
    yield network
    await network.close()
