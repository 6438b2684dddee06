"""All service settings in one typed place, read from `LABELER_*` environment variables or `.env`.

Per-job options (token count, explainer counts, thresholds) live in `labeler.config.JobConfig` instead,
stored with each job, so a worker on another machine runs the job exactly as it was submitted.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".sae-labeler"


class LLMStageSettings(BaseSettings):
    """Endpoint of one LLM stage; empty fields fall back to the shared `LABELER_LLM_*` values."""

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELER_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="SQLite file, caches, demo outputs.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/labeler.db."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker (redis://...). Unset: every task runs in-process."
    )
    result_backend: str | None = Field(default=None, description="Celery result backend; default the broker.")
    visibility_timeout_s: int = Field(
        default=4 * 3600, ge=10, description="Redis redelivers an unacked task after this; above the longest task."
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(default="float32", description="float32 | float16 | bfloat16 for model + SAE.")

    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint; unset = offline labels.")
    llm_api_key: str = Field(default="not-needed", description="API key for the endpoint.")
    llm_model: str = Field(default="gpt-4o-mini", description="Model name sent to the endpoint.")
    explain_base_url: str | None = None
    explain_api_key: str | None = None
    explain_model: str | None = None
    score_base_url: str | None = None
    score_api_key: str | None = None
    score_model: str | None = None
    llm_concurrency: int = Field(default=64, ge=1, description="Concurrent LLM requests per worker process.")
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=5, ge=0)
    llm_price_prompt_per_mtok: float = Field(default=0.0, ge=0, description="USD per million prompt tokens.")
    llm_price_completion_per_mtok: float = Field(default=0.0, ge=0, description="USD per million completion tokens.")

    secret_key: str = Field(default="dev-insecure-change-me", description="Signs web sessions and CSRF tokens.")
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    web_https_only: bool = Field(default=False, description="Send the session cookie over HTTPS only (set behind TLS).")
    web_login_failures: str = Field(
        default="10/minute",
        description="Failed sign-ins allowed per user name and per client address in a moving window "
        "(e.g. 10/minute, 50/hour); beyond it the login answers 429 until the window frees up.",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'labeler.db'}"

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url or self.explain_base_url)

    def llm_stage(self, stage: str) -> LLMStageSettings:
        """Endpoint for `explain` or `score`, with the shared LLM settings as fallback."""
        return LLMStageSettings(
            base_url=getattr(self, f"{stage}_base_url") or self.llm_base_url,
            api_key=getattr(self, f"{stage}_api_key") or self.llm_api_key,
            model=getattr(self, f"{stage}_model") or self.llm_model,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
