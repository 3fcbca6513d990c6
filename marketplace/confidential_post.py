"""Posting a confidential job: the checks a confidential post adds, whose key to wrap the job key to, and
what is sealed before it reaches the store.

``Client.post_job`` calls these around its own checks: ``sealing_problems`` before anything else
(a Directed job without an allowlist, a model CID with ``--encrypt-model``, a key window outside the
contract's bounds), ``parties`` once the plaintext job passed the preflight (each allowlisted
provider's published key, signature checked: one without one is refused before anything is
uploaded or spent), then ``seal_job`` and the sealing of the inputs manifest and the model folder.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_utils.address import to_checksum_address

from marketplace.chain.market import JobMarket
from marketplace.errors import SealedError
from marketplace.preflight import PreflightError
from marketplace.protocol import MAX_KEY_WINDOW, MIN_KEY_WINDOW, Confidentiality, Role
from marketplace.sealed.directory import published_recipient, verifier_recipients
from marketplace.sealed.envelope import MAX_WRAPPED_KEYS, Envelope, seal_bundle, seal_job
from marketplace.sealed.keys import PartyKey
from marketplace.storage import ContentStore

DEFAULT_KEY_WINDOW_S = 300


@dataclass(frozen=True)
class Sealing:
    """How a job's content is protected: ``PUBLIC`` (the default: nothing sealed), ``DIRECTED`` (the key
    wrapped in the spec to each allowlisted provider) or ``OPEN`` (released on-chain to the claimant, who
    has ``key_window_s`` to give the claim back if it is unusable). ``encrypt_model`` seals the model
    folder too (otherwise only the inputs and outputs are sealed)."""

    confidentiality: Confidentiality = Confidentiality.PUBLIC
    encrypt_model: bool = False
    key_window_s: int = DEFAULT_KEY_WINDOW_S

    @property
    def confidential(self) -> bool:
        return self.confidentiality != Confidentiality.PUBLIC

    def key_window(self) -> int:
        """The request's ``key_window``: the window for an Open job, 0 otherwise (the contract's rule)."""
        return self.key_window_s if self.confidentiality == Confidentiality.OPEN else 0


def max_key_window(exec_window_s: int) -> int:
    """The longest key window the contract accepts for ``exec_window_s``: half of it, at most a day."""
    return min(exec_window_s // 2, MAX_KEY_WINDOW)


def sealing_problems(sealing: Sealing, model: str, allowlist: Sequence[str], exec_window_s: int) -> list[str]:
    """What is wrong with a confidential post before anything is read: one line per problem."""
    problems = []
    if not sealing.confidential:
        if sealing.encrypt_model:
            problems.append("--encrypt-model needs --confidential open|directed")
        return problems
    if sealing.encrypt_model and not Path(model).is_dir():
        problems.append(f"--encrypt-model: --model {model} is not a folder here: a model already uploaded cannot "
                        "be encrypted; pass the model folder instead")
    if sealing.confidentiality == Confidentiality.DIRECTED and not allowlist:
        problems.append("--confidential directed wraps the key to each allowlisted provider: pass --allowlist or "
                        "--allow")
    if sealing.confidentiality == Confidentiality.OPEN:
        highest = max_key_window(exec_window_s)
        if not MIN_KEY_WINDOW <= sealing.key_window_s <= highest:
            problems.append(f"--key-window {sealing.key_window_s}: an Open job's key window is {MIN_KEY_WINDOW} to "
                            f"{highest} s (half the exec window, at most a day)")
    return problems


def parties(market: JobMarket, store: ContentStore, requester: str, requester_recipient: str, sealing: Sealing,
            allowlist: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Who the spec wraps the job key to (address -> recipient): the requester, each allowlisted provider of a
    Directed job, and the verifiers in the draw (``directory.verifier_recipients``, as many as the spec holds);
    and one problem line per allowlisted provider whose published key is missing or fails its signature check."""
    wrapped: dict[str, str] = {str(to_checksum_address(requester)): requester_recipient}
    problems = []
    if sealing.confidentiality == Confidentiality.DIRECTED:
        for member in allowlist:
            try:
                wrapped[str(to_checksum_address(member))] = published_recipient(market, store, member, Role.PROVIDER)
            except SealedError as error:
                problems.append(f"--confidential directed: allowlisted provider {to_checksum_address(member)} has "
                                f"no usable encryption key ({error})")
    # The verifiers in the draw, heaviest first, in the slots left: a drawn verifier or panel member then
    # has the key from us, and a provider cannot hand it a bad one and win the appeal (docs/DESIGN.md).
    wrapped.update(verifier_recipients(market, store, MAX_WRAPPED_KEYS - len(wrapped), tuple(wrapped)))
    return wrapped, problems


def seal_post(market: JobMarket, store: ContentStore, requester: str, key: PartyKey, sealing: Sealing,
              allowlist: Sequence[str]) -> Envelope:
    """A fresh job key's envelope, wrapped to ``requester``'s ``key`` and (Directed) each allowlisted provider's
    published key; ``PreflightError`` naming each provider without one, before anything is uploaded."""
    wrapped, refused = parties(market, store, requester, key.recipient, sealing, allowlist)
    if refused:
        raise PreflightError(refused)
    return seal_job(wrapped, model_encrypted=sealing.encrypt_model)[1]


@contextlib.contextmanager
def sealed_model(model: str | Path, envelope: Envelope | None) -> Iterator[str | Path]:
    """What to upload as the model: ``model`` itself, or, when ``envelope`` says the model is encrypted, a copy
    of the folder with every file sealed to the job's key, in a temporary folder removed afterwards."""
    if envelope is None or not envelope.model_encrypted:
        yield model
        return
    with tempfile.TemporaryDirectory(prefix="webi-sealed-model-") as folder:
        yield seal_bundle(Path(model), Path(folder) / Path(model).name, envelope)
