"""The chain's history of WEBI: decoded events and the state they fold into.

Shared by the indexer (which stores both in SQL for the API) and the auditor (which rebuilds
them from the chain alone and checks them against the contracts' own view).
"""

from marketplace.history.events import ChainEvent, EventDecoder, fetch_events
from marketplace.history.state import ChainState
from marketplace.history.views import (
    ChallengeView,
    Credit,
    JobView,
    Penalty,
    SlashCause,
    SlashView,
    StakeView,
    VerifierRecord,
)

__all__ = [
    "ChainEvent",
    "ChainState",
    "ChallengeView",
    "Credit",
    "EventDecoder",
    "JobView",
    "Penalty",
    "SlashCause",
    "SlashView",
    "StakeView",
    "VerifierRecord",
    "fetch_events",
]
