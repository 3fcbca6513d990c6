"""WEBI's exception tree. Every error the package raises on purpose is a ``WebiError``.

::

    WebiError
    ├── ConfigError           bad settings, missing files, a node or tool not installed
    ├── ChainError            talking to the chain failed (RPC down, wrong chain, no deployment)
    │   ├── ChainUnreachableError  the RPC endpoint refused the connection or did not answer in time
    │   ├── TransactionError  a transaction was mined but reverted, never got a receipt, or cannot pay for gas
    │   └── ContractError     the contract refused a call with one of its custom errors
    ├── ArgumentError         a value does not fit the contract's types (an amount over a uint96, a bad address)
    ├── DevnetError           the local anvil devnet could not start, or is not running
    ├── JobSpecError          a job spec or input manifest is malformed (names the field and why)
    ├── ModelError            a model bundle is refused (pickle, unknown architecture, too large)
    ├── ContentError          the content store refused or could not serve content
    │   ├── CidError              a string or bytes are not a CID we can use
    │   ├── BlockMismatchError    bytes do not hash to the CID they were fetched or stored under
    │   ├── ContentNotFoundError  no store we asked has the block or path
    │   ├── ContentTooLargeError  an upload, block or CAR is over a configured limit
    │   └── StoreUnavailableError a remote store (Kubo RPC, gateway) could not be reached or refused
    └── SealedError           encrypted content or an encryption key cannot be used (marketplace.sealed)
        ├── NotEncryptedError     the bytes are not an age file at all
        ├── WrongKeyError         the file is not encrypted to any key given
        ├── TamperedError         the ciphertext was altered or truncated (an AEAD check failed)
        ├── MissingKeyError       no encryption key where one is needed (file, metadata document)
        └── KeySignatureError     a published encryption key is not signed by the account it claims

Messages carry the context a user needs to act (job id, address, tx hash): they are shown as
they are by the CLI.
"""

from __future__ import annotations

from typing import Any


class WebiError(Exception):
    """Root of every error WEBI raises on purpose."""


class ConfigError(WebiError):
    """Settings or local set-up are wrong; the message says what to change."""


class ChainError(WebiError):
    """The chain could not be reached or did not answer as expected."""


class ChainUnreachableError(ChainError):
    """The RPC endpoint refused the connection, or accepted it and did not answer within the timeout."""


class TransactionError(ChainError):
    """A transaction was sent but did not succeed; ``tx_hash`` names it when there is one."""

    def __init__(self, message: str, tx_hash: str | None = None) -> None:
        super().__init__(message if tx_hash is None else f"{message} (tx {tx_hash})")
        self.tx_hash = tx_hash


class ContractError(ChainError):
    """The contract reverted with a custom error: ``name`` and decoded ``args`` say which and why.

    Tests compare ``name`` and ``args_by_name``, never the message text. The message is a sentence
    a person can act on (``marketplace.chain.explain``) followed by the raw form in brackets:
    "job 3 is Cancelled; only an Open job can be cancelled (WrongState(jobId=3, have=5, want=1) in cancelJob)".
    ``raw`` keeps the bracketed form alone.
    """

    def __init__(self, name: str, args: dict[str, Any], function: str | None = None) -> None:
        # Imported here: explain needs protocol and units, which import this module.
        from marketplace.chain.explain import explain

        shown = ", ".join(f"{key}={_show(value)}" for key, value in args.items())
        where = f" in {function}" if function else ""
        self.raw = f"{name}({shown}){where}"
        sentence = explain(name, args, function)
        super().__init__(self.raw if sentence is None else f"{sentence} ({self.raw})")
        self.name = name
        self.args_by_name = args
        self.function = function

    @property
    def values(self) -> tuple[Any, ...]:
        """The error's arguments in declaration order."""
        return tuple(self.args_by_name.values())


class ArgumentError(WebiError):
    """A value cannot be sent to the contract as it is: out of its ABI type's range, or not an address."""


class DevnetError(WebiError):
    """The local devnet could not be started, reached, or stopped."""


class JobSpecError(WebiError):
    """A job spec or input manifest is malformed; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"job spec field {field!r}: {reason}")
        self.field = field
        self.reason = reason


class ModelError(WebiError):
    """A model bundle cannot be run: pickle weights, an architecture off the allowlist, remote code, too large."""


class ContentError(WebiError):
    """The content store refused or could not serve content; the message names the CID."""


class CidError(ContentError):
    """A value is not a CID, or is one we cannot use (only sha2-256 over raw and dag-pb)."""


class BlockMismatchError(ContentError):
    """A block's bytes do not hash to its CID: it was corrupted or a peer lied. Never stored."""

    def __init__(self, cid: str, source: str) -> None:
        super().__init__(f"block {cid} from {source} does not match its CID; refused")
        self.cid = cid
        self.source = source


class ContentNotFoundError(ContentError):
    """The store has no such block, or a directory has no such path."""


class ContentTooLargeError(ContentError):
    """Content is over a configured size limit."""


class StoreUnavailableError(ContentError):
    """A remote content store could not be reached, or answered with an error."""


class SealedError(WebiError):
    """Encrypted content or an encryption key cannot be used; the message names the file or address.

    ``marketplace.sealed`` raises it, and its subclasses below, in place of pyrage's errors.
    """


class NotEncryptedError(SealedError):
    """The bytes do not start like an age file (binary or armored): nothing to decrypt."""


class WrongKeyError(SealedError):
    """No key given opens the file: it was encrypted to other recipients (or its header stanza was altered)."""


class TamperedError(SealedError):
    """The ciphertext was altered or truncated: an AEAD check (header MAC or a payload chunk) failed."""


class MissingKeyError(SealedError):
    """An encryption key that should exist does not: no key file, or no key in a metadata document."""


class KeySignatureError(SealedError):
    """A published encryption key is unsigned, malformed, or signed by another account or for another chain."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
