"""Turn revert data into ``ContractError``s that name the custom error and its arguments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_abi.abi import decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from marketplace.errors import ContractError

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


def _canonical_type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


class ErrorDecoder:
    """Knows every custom error of a set of ABIs, by selector."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_canonical_type(i) for i in item["inputs"]]
                selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
                names = [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])]
                self._errors[selector] = (item["name"], types, names)

    def decode(self, data: bytes | str | None, function: str | None = None) -> ContractError:
        """The error that ``data`` (revert data) encodes; unknown data still gives a ContractError."""
        raw = _as_bytes(data)
        selector, body = raw[:4], raw[4:]
        if selector == _ERROR_STRING:
            return ContractError("Error", {"message": decode(["string"], body)[0]}, function)
        if selector == _PANIC:
            return ContractError("Panic", {"code": decode(["uint256"], body)[0]}, function)
        known = self._errors.get(selector)
        if known is None:
            return ContractError("UnknownError", {"data": raw}, function)
        name, types, names = known
        values = decode(types, body)
        return ContractError(name, {n: _normalize(t, v) for n, t, v in zip(names, types, values, strict=True)},
                             function)


def _normalize(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    return value


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    return bytes.fromhex(text)
