"""One tree of errors for everything sae-labeler raises on purpose.

    LabelerError                      catch this to catch them all
    ├── ConfigError                   a setting or job option that cannot work
    ├── SourceError                   model / SAE / dataset inputs
    │   ├── ModelLoadError            model name or path cannot be loaded
    │   ├── SAENotFoundError          SAE folder or release/id does not exist
    │   ├── HookNotFoundError         hook name is not a hook of the model
    │   ├── DimensionMismatchError    SAE d_in differs from the model width at the hook
    │   └── DatasetError              dataset missing, unreadable, not UTF-8 or empty
    ├── StoreError                    SQL problems worth telling a user about
    │   └── NotFoundError             a job / feature / label id that does not exist
    ├── LLMError                      the LLM endpoint failed after retries
    │   ├── BudgetExceededError       the job's token or cost budget is spent
    │   └── ExplanationParseError     an answer that is not a usable label or score
    └── AuthError                     login, token, role or CSRF refused
        ├── NotAuthenticatedError     no valid session or API token (HTTP 401)
        └── PermissionDeniedError     signed in, but the role or CSRF token does not allow it (HTTP 403)

Messages say what to do next: "hook blocks.9.hook_resid_post not in model; it has 6 layers".
"""


class LabelerError(Exception):
    """Base of every error sae-labeler raises on purpose."""


class ConfigError(LabelerError):
    """A setting or job option that cannot work."""


class SourceError(LabelerError):
    """A model, SAE or dataset input that cannot be used."""


class ModelLoadError(SourceError):
    """The model name or path cannot be loaded."""


class SAENotFoundError(SourceError):
    """The SAE folder, or the release/id, does not exist."""


class HookNotFoundError(SourceError):
    """The hook name is not one of the model's hooks."""


class DimensionMismatchError(SourceError):
    """The SAE's d_in differs from the model's width at the hook."""


class DatasetError(SourceError):
    """The dataset is missing, unreadable, not UTF-8, or yields no tokens."""


class StoreError(LabelerError):
    """A SQL problem worth telling a user about."""


class NotFoundError(StoreError):
    """A job, feature or label id that does not exist."""


class LLMError(LabelerError):
    """The LLM endpoint failed after all retries."""


class BudgetExceededError(LLMError):
    """The job's token or cost budget is spent; the job stops cleanly."""


class ExplanationParseError(LLMError):
    """An LLM answer that is not a usable label or score; becomes a dispute reason."""


class AuthError(LabelerError):
    """Login, token, role or CSRF check refused."""


class NotAuthenticatedError(AuthError):
    """No valid session or API token: sign in, or send `Authorization: Bearer <token>`."""


class PermissionDeniedError(AuthError):
    """Signed in, but the role does not allow the action, or the CSRF token is missing or wrong."""
