"""The storage network: blobs placed and replicated over several independent S3 providers.

placement.py — where copies belong (pure); backend.py — the ``BlobBackend`` over the providers;
repair.py — the one loop that makes copies match placement (repair, rebalance, drain, scrub)."""

from suite.storage.network.backend import CorruptCopy, NetworkBackend, NetworkUnavailable, Provider

__all__ = ["CorruptCopy", "NetworkBackend", "NetworkUnavailable", "Provider"]
