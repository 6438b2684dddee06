"""Liveness for load balancers and compose health checks: no auth, no data."""

from __future__ import annotations

from fastapi import APIRouter

from labeler.web.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health() -> HealthOut:
    return HealthOut(status="ok")
