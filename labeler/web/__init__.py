"""The review UI and HTTP API: a thin FastAPI shell over labeler.store and labeler.jobs.

`create_app()` (in labeler.web.app) builds it; `labeler serve` runs it with uvicorn.
"""
