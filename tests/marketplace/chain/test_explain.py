"""Contract errors as sentences: every declared error has one, with state names, WEBI and what to do."""

from __future__ import annotations

from marketplace.chain.deployment import WEI, protocol_abis
from marketplace.chain.explain import explain, explained_names
from marketplace.chain.revert import ErrorDecoder
from marketplace.errors import ContractError
from marketplace.protocol import JobState, Role

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _declared_errors() -> dict[str, list[dict[str, object]]]:
    return {str(item["name"]): list(item["inputs"])  # type: ignore[call-overload]
            for abi in protocol_abis() for item in abi if item.get("type") == "error"}


def _sample(abi_type: str, name: str) -> object:
    if abi_type == "address":
        return ALICE
    if abi_type.startswith("bytes"):
        return b"protocolFeeBps".ljust(32, b"\x00")
    if abi_type == "string":
        return "a long string"
    if abi_type == "uint8":
        return 1
    return 1_700_000_000 if "at" in name.lower() or "deadline" in name.lower() else 12 * WEI


def test_every_declared_error_has_a_sentence() -> None:
    declared = _declared_errors()
    assert len(declared) > 60
    assert set(declared) - explained_names() == set()
    for name, inputs in declared.items():
        args = {str(i["name"]): _sample(str(i["type"]), str(i["name"])) for i in inputs}  # type: ignore[index]
        sentence = explain(name, args, "postJob")
        assert sentence, name
        assert str(ContractError(name, args, "postJob")).startswith(sentence)


def test_wrong_state_names_states_and_the_action() -> None:
    error = ContractError("WrongState", {"jobId": 3, "have": JobState.CANCELLED, "want": JobState.OPEN}, "cancelJob")
    assert str(error) == ("job 3 is Cancelled; only an Open job can be cancelled "
                          "(WrongState(jobId=3, have=5, want=1) in cancelJob)")
    assert error.name == "WrongState"
    assert error.args_by_name == {"jobId": 3, "have": JobState.CANCELLED, "want": JobState.OPEN}
    assert error.raw == "WrongState(jobId=3, have=5, want=1) in cancelJob"


def test_amounts_are_in_webi_and_say_how_much_more() -> None:
    sentence = explain("InsufficientStake", {"account": ALICE, "have": 40 * WEI, "need": 100 * WEI}, "register")
    assert sentence == f"{ALICE} offers a stake of 40 WEBI; register needs at least 100 WEBI: stake at least 100 WEBI"
    claim = explain("InsufficientStake", {"account": ALICE, "have": 2 * WEI, "need": 5 * WEI // 2}, "claimJob")
    assert claim is not None and "stake at least 0.5 WEBI more" in claim
    price = explain("PriceAboveMaximum", {"price": 600 * WEI, "max": 500 * WEI}, "postJob")
    assert price == "the price 600 WEBI is above the market's maximum of 500 WEBI a job: offer at most 500 WEBI, " \
                    "or split the job"


def test_times_are_dates_and_say_when_to_come_back() -> None:
    sentence = explain("CooldownActive", {"account": ALICE, "unlockAt": 1_700_000_000}, "withdrawStake")
    assert sentence == f"{ALICE}'s unstake is still cooling down: wait until 2023-11-14 22:13:20 UTC"


def test_roles_and_bytes32_names_are_words() -> None:
    assert explain("NotRegistered", {"account": ALICE, "role": Role.VERIFIER}, "addStake") == (
        f"{ALICE} is not registered as a verifier: register (with the minimum stake) first")
    bounds = explain("TermsOutOfBounds", {"name": b"protocolFeeBps".ljust(32, b"\x00"), "have": 300, "bound": 250})
    assert bounds is not None and bounds.startswith("the market's protocolFeeBps is 300 bps, beyond your bound of 250")


def test_unknown_function_and_odd_arguments_keep_the_raw_form() -> None:
    error = ContractError("WrongState", {"jobId": 1, "have": 2, "want": 1})
    assert str(error).startswith("job 1 is Claimed; only an Open job can go through this call")
    assert explain("WrongState", {"jobId": 1}) is None  # missing arguments: no sentence, no crash
    assert str(ContractError("WrongState", {"jobId": 1})) == "WrongState(jobId=1)"
    assert str(ContractError("SomethingNew", {"x": 1}, "f")) == "SomethingNew(x=1) in f"


def test_decoded_reverts_carry_the_sentence() -> None:
    decoder = ErrorDecoder(protocol_abis())
    panic = decoder.decode("0x4e487b71" + (0x11).to_bytes(32, "big").hex(), "finalize")
    assert str(panic) == "the contract hit an arithmetic overflow or underflow (code 0x11) (Panic(code=17) in finalize)"
