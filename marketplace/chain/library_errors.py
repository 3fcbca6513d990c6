"""Errors of the libraries under WEBI (web3, eth_utils, requests) as WEBI errors a person can act on.

web3 reports an amount too large for a ``uint96`` as a ``MismatchedABI`` of some fifty lines, a bad
address as a bare ``ValueError`` from eth_utils, a wallet without gas money as "Out of gas: gas
required exceeds allowance: 0". ``translate`` recognizes those and says what was wrong in one line;
``gist`` is the one line for anything it does not recognize. The CLI's ``run`` uses both, so no
command shows a library's traceback unless ``-v`` asks for it.

The libraries are imported only once an error of theirs can exist: an error of web3 or requests is
raised only after something imported it, so ``translate`` looks in ``sys.modules`` first and the CLI
starts without loading either (``tests/marketplace/cli/test_startup.py``).
"""

from __future__ import annotations

import ast
import re
import sys
from typing import TYPE_CHECKING, Any

from marketplace.errors import ArgumentError, ChainUnreachableError, TransactionError, WebiError
from marketplace.units import webi

if TYPE_CHECKING:
    from web3.exceptions import MismatchedABI, Web3RPCError

# Arguments whose numbers are wei of WEBI (shown as WEBI too).
_AMOUNT_NAMES = ("price", "amount", "stake", "value", "fee")
_MISMATCH = re.compile(r"Argument (\d+) value `(.*)` is not compatible with type `([^`]+)`")
_SIGNATURE = re.compile(r"Signature: (\w+)\(")
_NO_GAS_MONEY = ("out of gas: gas required exceeds allowance", "insufficient funds")
_INT_TYPE = re.compile(r"(u?)int(\d*)$")


def translate(error: BaseException) -> WebiError | None:
    """The WEBI error that says what ``error`` means, or None when it is not one we recognize."""
    if isinstance(error, WebiError):
        return error
    translated = _web3_error(error) if "web3" in sys.modules else None
    if translated is None and "requests" in sys.modules:
        translated = _requests_error(error)
    if translated is not None:
        return translated
    if isinstance(error, ValueError) and _looks_like_address_error(str(error)):
        return ArgumentError(f"{_quoted(str(error))} is not an Ethereum address: give 0x and 40 hex digits")
    return None


def _web3_error(error: BaseException) -> WebiError | None:
    """``translate`` for web3's own errors (web3 is loaded: only then can one exist)."""
    from web3.exceptions import MismatchedABI, Web3RPCError, Web3ValidationError

    if isinstance(error, MismatchedABI):
        return abi_mismatch(error)
    if isinstance(error, Web3ValidationError):
        return ArgumentError(f"the contract call was refused before sending: {gist(error)}")
    if isinstance(error, Web3RPCError) and needs_gas_money(error):
        return TransactionError("the sending account cannot pay for gas: fund it with ETH (on the devnet, send "
                                "some from a dev account `webi devnet up` funded)")
    return None


def _requests_error(error: BaseException) -> WebiError | None:
    """``translate`` for a chain or store that cannot be reached (requests is loaded: only then can one exist)."""
    import requests

    if isinstance(error, requests.Timeout):
        return ChainUnreachableError(f"a request timed out: {gist(error)}")
    if isinstance(error, requests.ConnectionError):
        return ChainUnreachableError(f"cannot connect: {gist(error)}")
    return None


def gist(error: BaseException) -> str:
    """One line for ``error``: its type and the first line of its message, at most 300 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else "(no message)"
    text = f"{type(error).__name__}: {first}"
    return text if len(text) <= 300 else text[:297] + "..."


def needs_gas_money(error: Web3RPCError) -> bool:
    """Whether the node refused because the sender's ETH does not cover the gas."""
    return any(marker in str(error).lower() for marker in _NO_GAS_MONEY)


def abi_mismatch(error: MismatchedABI) -> ArgumentError:
    """Names the argument that does not fit its ABI type, with the type's limit (in WEBI for amounts)."""
    text = str(error)
    function = match.group(1) if (match := _SIGNATURE.search(text)) else "the call"
    found = _MISMATCH.search(text)
    if found is None:
        return ArgumentError(f"the arguments do not fit {function}: {gist(error)}")
    position, value_text, abi_type = int(found.group(1)), found.group(2), found.group(3)
    try:  # web3 shows a top-level string bare ("0x123"), one inside a tuple as a repr
        value = value_text if abi_type in ("address", "string") else ast.literal_eval(value_text)
    except (ValueError, SyntaxError):
        return ArgumentError(f"argument {position} of {function} does not fit type {abi_type}")
    names = _input_names(function, position - 1)
    problem = _first_misfit(value, abi_type, names)
    if problem is None:
        return ArgumentError(f"argument {position} of {function} does not fit type {abi_type}")
    return ArgumentError(f"{problem} for {function}")


def _first_misfit(value: Any, abi_type: str, name: Any) -> str | None:
    """The first integer in ``value`` outside its type's range, described; None when all fit."""
    if abi_type.startswith("(") and abi_type.endswith(")") and isinstance(value, tuple | list):
        types = _split_tuple(abi_type[1:-1])
        names = name if isinstance(name, list) else [None] * len(types)
        for item, item_type, item_name in zip(value, types, names, strict=False):
            problem = _first_misfit(item, item_type, item_name)
            if problem is not None:
                return problem
        return None
    from eth_utils.address import is_address  # loaded already: a MismatchedABI came from web3

    if abi_type == "address" and isinstance(value, str) and not is_address(value):
        return f"{value!r} is not an Ethereum address (give 0x and 40 hex digits)"
    match = _INT_TYPE.match(abi_type)
    if match is None or not isinstance(value, int) or isinstance(value, bool):
        return None
    signed, bits = match.group(1) != "u", int(match.group(2) or 256)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    label = f"{name} {value}" if isinstance(name, str) else f"value {value}"
    is_amount = isinstance(name, str) and any(word in name.lower() for word in _AMOUNT_NAMES)
    if value > high:
        limit = f"{high} wei ({webi(high)} WEBI)" if is_amount else str(high)
        shown = f"{label} wei ({webi(value)} WEBI)" if is_amount else label
        return f"{shown} is above the contract's limit of {limit} ({abi_type})"
    if value < low:
        return f"{label} is below the contract's lowest value {low} ({abi_type})"
    return None


def _split_tuple(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inner[start:index])
            start = index + 1
    parts.append(inner[start:])
    return [part for part in parts if part]


def _input_names(function: str, index: int) -> Any:
    """The name of input ``index`` of ``function`` in WEBI's ABIs (a list of names for a struct)."""
    from marketplace.chain.deployment import protocol_abis  # the ABIs load lazily: only an error needs them

    def names(item: dict[str, Any]) -> Any:
        if str(item.get("type", "")).startswith("tuple"):
            return [names(component) for component in item.get("components", [])]
        return item.get("name") or None

    for abi in protocol_abis():
        for item in abi:
            inputs = item.get("inputs")
            if item.get("type") == "function" and item.get("name") == function and isinstance(inputs, list) \
                    and index < len(inputs):
                return names(inputs[index])
    return None


def _looks_like_address_error(message: str) -> bool:
    return message.startswith("Unknown format") or "must be a hex string" in message or \
        "is not a valid ETH address" in message or "Address has an invalid EIP-55 checksum" in message


def _quoted(message: str) -> str:
    found = re.search(r"'([^']*)'", message)
    return repr(found.group(1)) if found else "the address"
