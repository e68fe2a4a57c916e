"""How fast one user may change groups: create them, and add members to them.

Both put other people somewhere they did not ask to be (a group in their list, its
messages in their inbox): unlimited, one script put a user in 200 groups in 0.4 s.
Each creation and each member addition spends one change of the acting user's
allowance; past it the request is refused (429 with Retry-After) before anything is
read or written. Leaving or removing is never limited: nobody may be kept in a group."""
from __future__ import annotations

from dataclasses import dataclass

from application.ports import RateLimiter
from domain import errors


@dataclass
class GroupChangeAllowance:
    limiter: RateLimiter  # a bucket per user; a limiter at rate 0 lets everything through

    async def spend(self, actor_id: str) -> None:
        wait = await self.limiter.take("group-changes:" + actor_id)
        if wait > 0:
            raise errors.RateLimited(wait, "too many group changes (new groups, added members); slow down")
