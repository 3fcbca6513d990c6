"""``Client.groups``: a requester's job groups, for scripts and notebooks (``webi job`` uses it too).

    posting = client.groups.post(GroupDraft("embed", "./model", texts, price_wei=WEI, shard_tasks=1_024))
    view = client.groups.wait(posting.group_id, retry=client.groups.retrier(posting.group_id, budget_wei=WEI))
    merged = client.groups.results(posting.group_id)  # each shard checked against its root, in input order
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from marketplace.errors import WebiError
from marketplace.groups.merge import MergedResult, merge
from marketplace.groups.post import GroupDraft, GroupPosting, post_group
from marketplace.groups.retry import Retrier, RetryRound
from marketplace.groups.view import GroupReader, GroupView
from marketplace.preflight import Preflight
from marketplace.storage.importer import Progress

if TYPE_CHECKING:
    from marketplace.client import Client


class GroupTimeoutError(WebiError, TimeoutError):
    """A group did not finish in time (it still may: nothing was changed); ``view`` is where it stood."""

    def __init__(self, message: str, view: GroupView) -> None:
        super().__init__(message)
        self.view = view


class GroupRequests:
    """Job groups through one ``Client``: post, read, wait (with retries) and merge."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.reader = GroupReader(client)

    def post(self, draft: GroupDraft, *, progress: Progress | None = None, check_providers: bool = True,
             on_checked: Callable[[Preflight], None] | None = None) -> GroupPosting:
        """Cuts the inputs into shards and posts them as one group (``groups.post.post_group``)."""
        return post_group(self.client, draft, progress=progress, check_providers=check_providers,
                          on_checked=on_checked)

    def status(self, group_id: int) -> GroupView:
        return self.reader.read(group_id)

    def retrier(self, group_id: int, *, budget_wei: int, claim_window_s: int = 3_600) -> Retrier:
        return Retrier(self.client, group_id, budget_wei, claim_window_s)

    def wait(self, group_id: int, *, timeout: float = 3_600.0, interval: float = 1.0,
             retry: Retrier | None = None, on_change: Callable[[GroupView], None] | None = None,
             on_retry: Callable[[RetryRound], None] | None = None) -> GroupView:
        """Polls until every shard is finalized, or (without ``retry``, or with its budget spent) nothing more
        can happen without the requester; ``GroupTimeoutError`` after ``timeout``. ``on_change`` sees the view
        whenever a shard moves; ``retry`` re-posts failed shards as they fail (``on_retry`` sees each round)."""
        deadline = time.monotonic() + timeout
        last: tuple[object, ...] | None = None
        while True:
            view = self.reader.read(group_id)
            if retry is not None and not retry.exhausted:
                made = retry.round(view)
                if made is not None:
                    if on_retry is not None:
                        on_retry(made)
                    view = self.reader.read(group_id)
            now = tuple((s.job.job_id, s.label(view.now)) for s in view.shards)
            if now != last and on_change is not None:
                on_change(view)
            last = now
            if view.done or (view.settled and (retry is None or retry.exhausted)):
                return view
            if time.monotonic() > deadline:
                raise GroupTimeoutError(f"group {group_id}: {view.finalized} of {view.count} shards finalized after "
                                        f"{timeout:g} s", view)
            time.sleep(interval)

    def results(self, group_id: int, *, force: bool = False,
                on_shard: Callable[[int, int], None] | None = None) -> MergedResult:
        """The merged outputs (``groups.merge``): every shard checked against its own root, in input order."""
        return merge(self.client, self.reader.read(group_id), force=force, on_shard=on_shard)
