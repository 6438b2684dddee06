"""JSON API under /api: one router per resource, assembled here."""

from fastapi import APIRouter

from labeler.web.routes.api import features, jobs, labels, review, users

router = APIRouter(prefix="/api")
for module in (jobs, features, review, labels, users):
    router.include_router(module.router)
