"""The exception tree. Every error the tool raises on purpose derives from AuditorError.

    AuditorError                      base; the CLI turns it into one line and exit code
    ├── UsageError                    bad flag values or combinations (exit 2)
    ├── DatasetError                  a benchmark file cannot be used: file, row, field, fix (exit 2)
    ├── TemplateError                 a prompt template is malformed (exit 2)
    ├── CacheError                    the SQLite cache cannot be opened or migrated (exit 3)
    ├── BudgetExceeded                a request would pass --max-tokens/-requests/-cost/-time: the
    │                                 scheduler stops there and the report says so (never a crash)
    └── EndpointError                 anything about the inference endpoint (exit 4)
        ├── TransportError            network trouble: connect, reset, timeout (retried)
        │   └── Unreachable           nothing answers there (refused, DNS): retried only once it has answered
        ├── HTTPStatusError           non-2xx answer; carries status and Retry-After (classified)
        ├── ResponseFormatError       2xx answer that is not what the dialect promises (retried once)
        │   ├── AlignmentError        logprobs do not line up with the prompt text (not retried)
        │   └── ResponseTooLarge      the body passed the size cap, on the wire or inflated (not retried)
        ├── CapabilityError           the endpoint cannot give prompt logprobs at all (probe)
        │   └── ModelLoadError        an in-process model cannot be loaded (not a model, corrupt, ...)
        ├── ModelNotServed            --model names no model the server lists (said once, whatever the dialect)
        ├── ReplicasDisagree          --base-url replicas that are not one model (description or scores differ)
        └── RetryBudgetSpent          an item's request allowance ran out before this prompt was sent

Expected per-prompt failures (a server that refuses one prompt) are not exceptions at the
run level: the scheduler records them as failed outcomes with their reason and goes on.
"""

from __future__ import annotations


class AuditorError(Exception):
    """Base of every error raised on purpose by auditor."""

    exit_code = 70  # internal: a bug (1 is --fail-on-leak with a leakage verdict)


class UsageError(AuditorError):
    exit_code = 2


class DatasetError(AuditorError):
    """A dataset problem, located precisely enough for the user to fix it."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str,
        row: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.field = field
        self.fix = fix
        self.reason = message
        where = file
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        text = f"{where}: {message}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)


class TemplateError(AuditorError):
    exit_code = 2


class CacheError(AuditorError):
    exit_code = 3


class BudgetExceeded(AuditorError):
    """Sending this request could pass a hard budget; `limit` names which one ("tokens", "requests",
    "cost", "time")."""

    exit_code = 5

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)


class EndpointError(AuditorError):
    exit_code = 4

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        self.endpoint = endpoint
        super().__init__(message if endpoint is None else f"{endpoint}: {message}")


class TransportError(EndpointError):
    """Could not complete the exchange (connect error, reset, timeout)."""

    def __init__(self, message: str, *, endpoint: str | None = None, timeout: bool = False) -> None:
        self.timeout = timeout
        super().__init__(message, endpoint=endpoint)


class Unreachable(TransportError):
    """No connection at all (refused, unknown host): at first contact this is an answer, not a hiccup."""


class HTTPStatusError(EndpointError):
    def __init__(
        self,
        message: str,
        *,
        status: int,
        endpoint: str | None = None,
        retry_after: float | None = None,
        body: str = "",
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.body = body
        super().__init__(f"HTTP {status}: {message}", endpoint=endpoint)


class ResponseFormatError(EndpointError):
    """The server answered 2xx but the payload breaks the dialect's contract."""


class AlignmentError(ResponseFormatError):
    """Token logprobs cannot be mapped onto the prompt's characters."""


class ResponseTooLarge(ResponseFormatError):
    """The response body passed the size cap (before or after decompression); reading stopped there."""


class CapabilityError(EndpointError):
    """The endpoint cannot return usable prompt log-probabilities."""


class ModelLoadError(CapabilityError):
    """An in-process model (`--provider local`) cannot be loaded: the path is not a model, or a file is corrupt."""


class RetryBudgetSpent(EndpointError):
    """An item's request allowance (its requests x --attempts, + 1 per prompt) ran out: not sent again."""


class ModelNotServed(EndpointError):
    """The server lists its models and --model is not among them: no dialect will do better."""


class ReplicasDisagree(EndpointError):
    """Endpoints given as replicas of one model describe themselves differently or score the same prompt
    differently: auditing them as one would mix two models' answers in one cache and one verdict."""
