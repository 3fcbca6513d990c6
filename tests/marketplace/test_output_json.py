"""``parse_output``'s bounds on a provider's output, each refused with a reason and each edge accepted; and
``Client.results`` and ``webi job results`` refusing a hostile output with ``ContentError`` on a real devnet
and store node, where plain json.loads would kill the process or pass NaN on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.client import Client
from marketplace.errors import ContentError
from marketplace.output_json import (
    MAX_DEPTH,
    MAX_DOCUMENT_DEPTH,
    MAX_INT_DIGITS,
    MAX_OUTPUT_BYTES,
    OutputNotJSONError,
    OutputRefusedError,
    nesting_depth,
    parse_document,
    parse_output,
)
from marketplace.protocol import Role
from marketplace.results import MerkleTree, canonical, output_manifest
from tests.conftest import Chain
from tests.marketplace.cli.runner import Cli
from tests.support.jobs import StoreNode

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def recursion_limit_raised() -> Iterator[None]:
    """The limit py_ecc sets on import (100,000), raised further: json.loads would then overflow the C stack
    (killing the process) on deep nesting rather than raise RecursionError. Restored afterwards."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(1_000_000, before))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def refused(raw: bytes, *words: str) -> OutputRefusedError:
    """``parse_output(raw)`` raises ``OutputRefusedError`` whose reason says each of ``words``."""
    with pytest.raises(OutputRefusedError) as caught:
        parse_output(raw)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason == str(caught.value)
    assert all(word in caught.value.reason for word in words), caught.value.reason
    return caught.value


def test_nesting_100k_deep_is_refused_before_parsing(recursion_limit_raised: None) -> None:
    assert sys.getrecursionlimit() >= 1_000_000
    refused(DEEP, "nested 100000 levels deep", f"more than {MAX_DEPTH}")
    refused(b'{"embedding":' + b"[" * 100_000, "nested 100001 levels")
    deepest = b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH
    assert nesting_depth(deepest.decode()) == MAX_DEPTH
    assert parse_output(deepest) == {"a": {"a": {"a": {"a": 1}}}}
    refused(b'{"a":' + deepest + b"}", f"nested {MAX_DEPTH + 1} levels")


def test_brackets_inside_strings_are_not_nesting() -> None:
    assert parse_output(b'{"text":"[[[[[[{{{{\\"[[","tokens":[1]}') == {"text": '[[[[[[{{{{"[[', "tokens": [1]}


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_refused(literal: bytes) -> None:
    refused(b'{"embedding":[0.5,' + literal + b"]}", literal.decode().lstrip("-"), "not a number a model gives")


def test_float_that_overflows_is_refused() -> None:
    refused(b'{"embedding":[1e400]}', "1e400 overflows a float")


def test_integer_over_18_digits_is_refused() -> None:
    refused(b'{"tokens":[' + b"9" * 400 + b"]}", "an integer of 400 digits", f"at most {MAX_INT_DIGITS}")
    refused(b'{"tokens":[-' + b"9" * (MAX_INT_DIGITS + 1) + b"]}", f"of {MAX_INT_DIGITS + 1} digits")
    assert parse_output(b'{"tokens":[-' + b"9" * MAX_INT_DIGITS + b"]}") == {"tokens": [-(10**MAX_INT_DIGITS - 1)]}


@pytest.mark.parametrize(("raw", "shown"), [(b"[1,2]", "a list of 2"), (b'"text"', "'text'"), (b"7", "7"),
                                            (b"null", "null")])
def test_top_level_that_is_not_an_object_is_refused(raw: bytes, shown: str) -> None:
    refused(raw, f"the top level is {shown}, not an object")


def test_duplicate_key_is_refused() -> None:
    refused(b'{"label_id":0,"label_id":2}', "the key 'label_id' appears twice")
    refused(b'{"a":{"b":1,"b":1}}', "'b' appears twice")  # nested objects too


def test_output_over_1_mib_is_refused_and_one_of_1_mib_parses() -> None:
    head, tail = b'{"text":"', b'"}'
    largest = head + b"a" * (MAX_OUTPUT_BYTES - len(head) - len(tail)) + tail
    assert len(largest) == MAX_OUTPUT_BYTES and len(parse_output(largest)["text"]) == MAX_OUTPUT_BYTES - 11
    refused(largest + b" ", f"{MAX_OUTPUT_BYTES + 1} bytes, over the bound of {MAX_OUTPUT_BYTES}")


def test_bytes_that_are_not_utf8_or_not_json_say_which() -> None:
    refused(b'{"a":"\xff"}', "not UTF-8 at byte 6")
    refused('{"a":"b"}'.encode("utf-16"), "not UTF-8 at byte 0")
    for raw in (b"not json", b"", b'{"a":1', b'{"text":"' + b'\\"' * 300_000):
        error = refused(raw, "not canonical JSON (")
        assert isinstance(error, OutputNotJSONError) and error.detail and len(error.reason) < 160


def test_a_value_that_is_not_bytes_is_refused() -> None:
    refused("{}", "it is str, not bytes")  # type: ignore[arg-type]
    assert parse_output(bytearray(b'{"a":[1,2.5,"x",true,null]}')) == {"a": [1, 2.5, "x", True, None]}


# ───────────────────────────────────────────── Client.results and webi job results


def committed(chain: Chain, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount,
              outputs: list[bytes]) -> int:
    """A job of ``len(outputs)`` tasks, claimed by (registered) ``provider``, which stored and committed
    ``outputs``."""
    job_id = chain.post(requester, num_tasks=len(outputs), price=len(outputs) * WEI, sample_tasks=1)
    chain.market.claim_job(provider, job_id)
    cid = str(store_node.store.add_bytes(output_manifest(outputs)).cid)
    chain.market.submit_result(provider, job_id, cid, MerkleTree(outputs).root)
    return job_id


def test_results_refuse_a_hostile_output_with_a_content_error(
    chain: Chain, store_node: StoreNode, requester: LocalAccount, provider: LocalAccount, devnet: Devnet,
    deployments: Path, tmp_path: Path, recursion_limit_raised: None,
) -> None:
    chain.register(provider, Role.PROVIDER)
    honest = canonical({"embedding": [0.6, 0.8]})
    client = Client(chain.protocol, store_node.store)
    fine = committed(chain, store_node, requester, provider, [honest, honest])
    assert client.results(fine) == [{"embedding": [0.6, 0.8]}] * 2

    # 100,000 levels deep rebuilds the root like any output: the SDK refuses it instead of dying on it.
    deep = committed(chain, store_node, requester, provider, [honest, DEEP, honest])
    with pytest.raises(ContentError, match=rf"^job {deep}: output 1 refused: nested 100000 levels deep, more than 4$"):
        client.results(deep)
    nan = committed(chain, store_node, requester, provider, [b'{"embedding":[NaN,0.5]}'])
    with pytest.raises(ContentError, match=rf"^job {nan}: output 0 refused: NaN is not a number a model gives$"):
        client.results(nan)

    # webi job results: one line, exit code 1, and no file written.
    cli = Cli(devnet, tmp_path / "home", deployments, store_node.url)
    written = tmp_path / "results.jsonl"
    shown = cli("job", "results", str(deep), "-o", str(written), code=1)
    assert f"job {deep}: output 1 refused: nested 100000 levels deep" in shown and not written.exists()
    assert "2 outputs verified" in cli("job", "results", str(fine), "-o", str(written))
    assert written.read_text() == '{"embedding": [0.6, 0.8]}\n' * 2


def test_a_document_someone_else_stored_is_depth_bounded_before_it_is_parsed() -> None:
    """Evidence (written by a verifier), specs and metadata: read by the provider's appeal, the node and
    the demo. 100,000 levels are refused with a reason; a normal document parses with JSON's rules."""
    with pytest.raises(OutputRefusedError, match=f"nested 100000 levels deep, more than {MAX_DOCUMENT_DEPTH}"):
        parse_document(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(OutputRefusedError, match="not UTF-8"):
        parse_document(b"\xff")
    assert parse_document(b'{"checks": [{"index": 3, "metric": 0.5}]}') == {"checks": [{"index": 3, "metric": 0.5}]}
