"""Who may open one more WebSocket: caps per user and per client address, so that one
user (or one address) cannot take every socket a gateway can hold."""
from __future__ import annotations

from dataclasses import dataclass

from application.ports import ConnectionCounter
from domain import errors

# Seconds a refused client is told to wait: sockets free up when others close, which
# the server cannot foresee; a short wait keeps a reconnecting client from hammering.
RETRY_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class Admission:
    """One socket counted against its user and its address: release it exactly once."""

    user_id: str
    address: str


@dataclass
class AdmitSocket:
    per_user: ConnectionCounter
    per_address: ConnectionCounter

    async def __call__(self, user_id: str, address: str) -> Admission:
        """Count the socket, or raise RateLimited (nothing counted) when its user or its
        address has every socket it may have open already."""
        if not await self.per_address.acquire(address):
            raise errors.RateLimited(RETRY_AFTER, "too many open sockets from this address")
        try:
            admitted = await self.per_user.acquire(user_id)
        except BaseException:
            await self.per_address.release(address)
            raise
        if not admitted:
            await self.per_address.release(address)
            raise errors.RateLimited(RETRY_AFTER, "too many open sockets for this user; close one first")
        return Admission(user_id, address)

    async def release(self, admission: Admission) -> None:
        try:
            await self.per_user.release(admission.user_id)
        finally:
            await self.per_address.release(admission.address)
