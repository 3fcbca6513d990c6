"""CIDs: our fast encoder against the multiformats library, parsing user input, and verification."""

from __future__ import annotations

import hashlib

import pytest
from multiformats import CID, multihash

from marketplace.errors import BlockMismatchError, CidError
from marketplace.storage.cid import DAG_PB, RAW, Cid, read_cid

EMPTY_DIRECTORY_V0 = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
EMPTY_DIRECTORY_V1 = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


@pytest.mark.parametrize("codec", [RAW, DAG_PB])
@pytest.mark.parametrize("seed", range(20))
def test_text_and_bytes_equal_the_library(codec: int, seed: int) -> None:
    data = seed.to_bytes(4, "big") * seed
    ours = Cid.of(data, codec)
    theirs = CID("base32", 1, "raw" if codec == RAW else "dag-pb", multihash.wrap(hashlib.sha256(data).digest(),
                                                                                  "sha2-256"))
    assert str(ours) == str(theirs)
    assert bytes(ours) == bytes(theirs)
    assert Cid.parse(str(theirs)) == ours


def test_parse_accepts_other_bases_and_v0() -> None:
    v1 = Cid.parse(EMPTY_DIRECTORY_V1)
    assert Cid.parse(CID.decode(EMPTY_DIRECTORY_V1).encode("base58btc")) == v1
    v0 = Cid.parse(EMPTY_DIRECTORY_V0)
    assert (v0.version, v0.codec) == (0, DAG_PB)
    assert str(v0) == EMPTY_DIRECTORY_V0
    assert v0.to_v1() == v1
    assert read_cid(bytes(v0)) == (v0, 34)
    assert read_cid(b"xx" + bytes(v1), 2) == (v1, 2 + len(bytes(v1)))


@pytest.mark.parametrize("text", ["", "not-a-cid", "bafy", "Qm123", EMPTY_DIRECTORY_V1[:-3]])
def test_parse_refuses_what_is_not_a_cid(text: str) -> None:
    with pytest.raises(CidError, match="not a CID"):
        Cid.parse(text)


def test_parse_refuses_other_hashes_and_codecs() -> None:
    sha512 = CID("base32", 1, "raw", multihash.wrap(hashlib.sha512(b"x").digest(), "sha2-512"))
    with pytest.raises(CidError, match="sha2-512 is not supported"):
        Cid.parse(str(sha512))
    cbor = CID("base32", 1, "dag-cbor", multihash.wrap(hashlib.sha256(b"x").digest(), "sha2-256"))
    with pytest.raises(CidError, match="dag-cbor is not supported"):
        Cid.parse(str(cbor))


def test_verify_names_the_cid_and_source() -> None:
    cid = Cid.of(b"good", RAW)
    assert cid.verify(b"good", "test") == b"good"
    with pytest.raises(BlockMismatchError) as caught:
        cid.verify(b"evil", "a test peer")
    assert caught.value.cid == str(cid)
    assert "a test peer" in str(caught.value)
