"""Deployments and the statuses a deploy reports on them."""

from __future__ import annotations

from bot.github.calls import PAGE, RepoCalls
from bot.github.models import Deployment, DeploymentStatus


class DeploymentCalls(RepoCalls):
    async def deployment(self, deployment_id: int) -> Deployment | None:
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(
            lambda: rest.repos.async_get_deployment(o, r, deployment_id)
        )
        return None if data is None else Deployment.of(data)

    async def deployment_statuses(self, deployment_id: int) -> list[DeploymentStatus]:
        """Newest first, as GitHub lists them."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.repos.async_list_deployment_statuses(o, r, deployment_id, per_page=PAGE)
        )
        return [DeploymentStatus.of(d) for d in data]
