"""What every view shares: the store, the board cache, the open reviews and their reviewers, and the error a
URL naming nothing gets."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.store import Store

from .boards import BoardCache


class NotFound(HarnessError):
    """A URL naming something the store does not hold (answered 404)."""


class Forbidden(HarnessError):
    """A write without a reviewer's token, or from another site (answered 403)."""


@dataclass
class Context:
    store: Store
    boards: BoardCache
    reviews: dict = field(default_factory=dict)  # ranking -> reports.app.review.Review
    reviewers: dict = field(default_factory=dict)  # token -> reviewer name
