"""The clients' errors: an error answer from the service, or no answer at all."""

from __future__ import annotations

__all__ = ["ApiError", "ServiceUnavailable"]


class ApiError(Exception):
    """The service answered with a 4xx or 5xx status.

    Attributes:
        status_code: the HTTP status.
        error: the service's machine-readable code, e.g. "not_found", "conflict",
            "bad_request", "corrupted_image"; for an answer without the service's error
            body, the status phrase ("bad_gateway").
        detail: what went wrong, for a person.
    """

    def __init__(self, status_code: int, error: str, detail: str) -> None:
        super().__init__(f"{status_code} {error}: {detail}")
        self.status_code = status_code
        self.error = error
        self.detail = detail


class ServiceUnavailable(ApiError):
    """No answer came back (connection refused or reset, timeout), after the retries for
    calls that may be retried, at once for the others.

    `status_code` is 503 and `error` "unavailable". For an enrolment, review or edit,
    the change may or may not have been applied: look it up before sending it again.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(503, "unavailable", detail)
