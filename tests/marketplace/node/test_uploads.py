"""The web app's routes over real HTTP against a node following the devnet: sign in with a wallet, upload a
job's inputs, model folder and spec, and read a price suggestion from the jobs the node has indexed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Devnet
from marketplace.jobspec import JobSpec, inputs_manifest, parse_spec
from marketplace.node import NodeSettings, create_node_app
from marketplace.storage.cid import RAW, Cid
from marketplace.storage.local import LocalStore
from tests.conftest import Chain
from tests.support.models import build_bundle
from tests.support.node import Node
from tests.support.servers import serve

OPERATOR_TOKEN = "operator-secret-token"
Files = list[tuple[str, tuple[str, bytes, str]]]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle("embed", tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture
def small_node(tmp_path: Path, devnet: Devnet, deployments: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    """A node with an operator store token and small upload limits."""
    monkeypatch.setenv("WEBI_TEST_OPERATOR_TOKEN", OPERATOR_TOKEN)
    settings = NodeSettings(
        rpc_url=devnet.anvil.rpc_url, deployments_dir=deployments, database=str(tmp_path / "small" / "index.db"),
        store_dir=tmp_path / "small" / "store", store_token_env="WEBI_TEST_OPERATOR_TOKEN",
        max_upload_bytes=4096, max_inputs_bytes=1024, poll_interval_s=0.05,
    )
    store = LocalStore(settings.store_dir)
    with serve(create_node_app(settings), lifespan="on") as url:
        yield Node(url, settings, store)


def sign_in(api: httpx.Client, account: LocalAccount) -> str:
    challenge = api.post("/auth/challenge", json={"address": account.address.lower()})
    assert challenge.status_code == 200, challenge.text
    message = challenge.json()["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.hex()
    session = api.post("/auth/session", json={"nonce": challenge.json()["nonce"], "signature": "0x" +
                                              signature.removeprefix("0x")})
    assert session.status_code == 200, session.text
    assert session.json()["address"] == account.address
    return str(session.json()["token"])


def folder_parts(folder: Path, top: str) -> Files:
    """The parts a browser sends for a folder chosen with webkitdirectory: each file named by its path."""
    return [("file", (f"{top}/{path.relative_to(folder).as_posix()}", path.read_bytes(), "application/octet-stream"))
            for path in sorted(folder.rglob("*")) if path.is_file()]


def inputs_file(lines: list[str]) -> Files:
    return [("file", ("inputs.jsonl", "".join(line + "\n" for line in lines).encode(), "application/x-ndjson"))]


def test_sign_in_then_inputs_model_and_spec(node: Node, requester: LocalAccount, tiny_bert: Path) -> None:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        challenge = api.post("/auth/challenge", json={"address": requester.address}).json()
        assert challenge["message"].startswith(
            f"{node.url.removeprefix('http://')} wants you to sign in with your Ethereum account:\n{requester.address}")
        token = sign_in(api, requester)
        auth = {"Authorization": f"Bearer {token}"}

        inputs = api.post("/uploads/inputs", files=inputs_file(['"hello world"', "", '{"text": "the cheat"}']),
                          headers=auth)
        assert inputs.status_code == 200, inputs.text
        manifest = inputs_manifest(["hello world", "the cheat"])
        assert inputs.json() == {"cid": str(node.store.add_bytes(manifest, pin=False).cid), "num_tasks": 2,
                                 "bytes": len(manifest)}
        assert node.store.read_bytes(Cid.parse(inputs.json()["cid"])) == manifest

        parts = folder_parts(tiny_bert, "tiny-bert")
        model = api.post("/uploads/model", files=[*parts, ("file", ("tiny-bert/.gitattributes", b"*", "text/plain"))],
                         headers=auth)
        assert model.status_code == 200, model.text
        expected = LocalStore.hash_path(tiny_bert, recursive=True)  # the folder as `webi store add -r` adds it
        assert model.json() == {"cid": str(expected.cid), "files": len(parts), "bytes": expected.size,
                                "skipped": [".gitattributes"]}
        assert Cid.parse(model.json()["cid"]) in node.store.pins()

        request = {"task": "embed", "model": model.json()["cid"], "inputs": inputs.json()["cid"], "num_tasks": 2,
                   "parameters": {"max_input_tokens": 64}}
        spec = api.post("/uploads/spec", json=request, headers=auth)
        assert spec.status_code == 200, spec.text

    served = httpx.get(f"{node.url}/ipfs/{spec.json()['cid']}")
    assert served.status_code == 200
    cid = Cid.parse(spec.json()["cid"])
    assert (cid.version, cid.codec) == (1, RAW) and Cid.of(served.content, RAW) == cid  # a browser can check it
    assert spec.json()["bytes"] == len(served.content)
    assert parse_spec(served.content) == JobSpec(task="embed", model=request["model"], inputs=request["inputs"],
                                                 num_tasks=2, parameters={"max_input_tokens": 64})


def test_a_group_is_cut_as_the_cli_cuts_it_and_bad_cuts_are_named(node: Node, requester: LocalAccount,
                                                                   tiny_bert: Path) -> None:
    texts = [f"text {index}" for index in range(5)]
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}
        inputs = api.post("/uploads/inputs", files=inputs_file([json.dumps(text) for text in texts]), headers=auth)
        model = api.post("/uploads/model", files=folder_parts(tiny_bert, "tiny-bert"), headers=auth)
        whole = {"task": "embed", "model": model.json()["cid"], "inputs": inputs.json()["cid"], "num_tasks": 5}
        cut = api.post("/uploads/group", json={**whole, "shards": 2, "price_wei": 1001}, headers=auth)
        assert cut.status_code == 200, cut.text
        shards = cut.json()["shards"]
        assert cut.json()["total"] == 5 and [(s["first_task"], s["num_tasks"], s["price_wei"]) for s in shards] == [
            (0, 3, "601"), (3, 2, "400")]  # the CLI's cut: the larger shard first, the remainder wei to it
        for shard in shards:
            spec = parse_spec(node.store.read_bytes(Cid.parse(shard["spec_cid"])))
            assert spec.shard is not None and (spec.shard.index, spec.shard.count, spec.shard.total) == (
                shard["index"], 2, 5)
            assert node.store.read_bytes(Cid.parse(spec.inputs)) == inputs_manifest(
                texts[shard["first_task"]:shard["first_task"] + shard["num_tasks"]])
        too_many = api.post("/uploads/group", json={**whole, "shards": 6, "price_wei": 1001}, headers=auth)
        assert too_many.status_code == 400
        assert too_many.json()["detail"] == "--shards 6: more shards than the 5 tasks (a shard needs at least 1 task)"
        unsigned = httpx.post(f"{node.url}/v1/uploads/group", json={**whole, "shards": 2, "price_wei": 1})
        assert unsigned.status_code == 401


def test_a_spec_must_name_what_the_store_holds(node: Node, requester: LocalAccount, tiny_bert: Path) -> None:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}
        inputs = api.post("/uploads/inputs", files=inputs_file(['"one"', '"two"', '"three"']), headers=auth).json()
        model = api.post("/uploads/model", files=folder_parts(tiny_bert, "tiny-bert"), headers=auth).json()
        base = {"task": "embed", "model": model["cid"], "inputs": inputs["cid"], "num_tasks": 3}

        def refused(**changes: object) -> str:
            answer = api.post("/uploads/spec", json={**base, **changes}, headers=auth)
            assert answer.status_code == 400, answer.text
            return str(answer.json()["detail"])

        assert "the manifest has more than 2 inputs but the job has 2 tasks" in refused(num_tasks=2)
        absent = str(Cid.of(b'{"text": "never uploaded"}\n', RAW))
        assert f"{absent} is not in this node's store" in refused(inputs=absent)
        assert "is a file, not a model folder" in refused(model=inputs["cid"])  # a file, not a model folder
        assert "bert model, which cannot generate" in refused(task="generate")
        assert "'task'" in refused(task="dance")
        assert "'parameters.max_input_tokens'" in refused(parameters={"max_input_tokens": 0})
        assert "'inputs'" in refused(inputs="not-a-cid")
        assert refused(num_tasks="three").startswith("body.num_tasks:")


def test_uploads_need_a_wallet_session(small_node: Node, requester: LocalAccount) -> None:
    files = inputs_file(['"hello"'])
    with httpx.Client(base_url=f"{small_node.url}/v1") as api:
        missing = api.post("/uploads/inputs", files=files)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json() == {
            "detail": "sign in with your wallet first (no session token in the Authorization header)"}
        operator = api.post("/uploads/inputs", files=files, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert operator.status_code == 401 and "unknown session token" in operator.json()["detail"]
        spec = api.post("/uploads/spec", json={}, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert spec.status_code == 401
        token = sign_in(api, requester)
        assert api.post("/uploads/inputs", files=files, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # The operator's token still opens the store's own write routes: it is refused by the web app only.
    added = httpx.post(f"{small_node.url}/api/v0/add", files={"file": ("x", b"x")},
                       headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert added.status_code == 200


def test_sign_in_errors_name_the_problem(node: Node, requester: LocalAccount, stranger: LocalAccount) -> None:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        bad_address = api.post("/auth/challenge", json={"address": "0x1234"})
        assert bad_address.status_code == 400 and "not an Ethereum address" in bad_address.json()["detail"]
        assert api.post("/auth/challenge", json={}).json() == {"detail": "body.address: Field required"}
        challenge = api.post("/auth/challenge", json={"address": requester.address}).json()
        by_stranger = stranger.sign_message(encode_defunct(text=challenge["message"])).signature.hex()
        wrong = api.post("/auth/session", json={"nonce": challenge["nonce"],
                                                "signature": "0x" + by_stranger.removeprefix("0x")})
        assert wrong.status_code == 401 and f"signed by {stranger.address}" in wrong.json()["detail"]
        replay = api.post("/auth/session", json={"nonce": challenge["nonce"], "signature": "0x" + "11" * 65})
        assert replay.status_code == 401 and "unknown or already used" in replay.json()["detail"]


def test_malformed_inputs_are_refused_naming_the_line(node: Node, requester: LocalAccount) -> None:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}

        def refused(lines: list[str]) -> str:
            answer = api.post("/uploads/inputs", files=inputs_file(lines), headers=auth)
            assert answer.status_code == 400, answer.text
            return str(answer.json()["detail"])

        assert refused(['"a"', "", '{"text": "b"}', "not json"]).startswith("line 4: not JSON")
        assert refused(['"a"', '{"text": ""}']).startswith("line 2: must be a non-empty string")
        assert refused(["", "  "]).startswith("the inputs file is empty")
        two = [("file", ("a.jsonl", b'"a"\n', "text/plain")), ("file", ("b.jsonl", b'"b"\n', "text/plain"))]
        assert api.post("/uploads/inputs", files=two, headers=auth).status_code == 400


def test_uploads_over_the_limits_are_refused(small_node: Node, requester: LocalAccount, tiny_bert: Path) -> None:
    with httpx.Client(base_url=f"{small_node.url}/v1") as api:
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}
        large = api.post("/uploads/inputs", files=inputs_file([json.dumps("x" * 2000)]), headers=auth)
        assert large.status_code == 413 and large.json()["detail"] == (
            "the inputs file is 2,003 bytes: this node takes at most 1,024")
        streamed = api.post("/uploads/inputs", files=inputs_file([json.dumps("x" * 70_000)]), headers=auth)
        assert streamed.status_code == 413 and "-byte limit" in streamed.json()["detail"]  # refused as it streamed
        at_limit = api.post("/uploads/inputs", files=inputs_file([json.dumps("x" * 1_021)]), headers=auth)
        assert at_limit.status_code == 200, at_limit.text  # 1,024 bytes of file: the multipart's own bytes don't count
        model = api.post("/uploads/model", files=folder_parts(tiny_bert, "tiny-bert"), headers=auth)
        assert model.status_code == 413 and "4096-byte limit" in model.json()["detail"]
    assert small_node.store.pins() == [Cid.parse(at_limit.json()["cid"])]  # the refused ones stored nothing


@pytest.mark.parametrize("path", ["tiny/../../etc/passwd", "/etc/passwd", "tiny\\..\\x.json", "C:/x.json",
                                  "tiny//config.json", "tiny/./config.json"])
def test_a_model_path_that_leaves_the_folder_is_refused(node: Node, requester: LocalAccount, path: str) -> None:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}
        files = [("file", ("tiny/config.json", b'{"model_type": "bert"}', "application/json")),
                 ("file", (path, b"{}", "application/json"))]
        answer = api.post("/uploads/model", files=files, headers=auth)
    assert answer.status_code == 400 and answer.json()["detail"].startswith("unsafe path in upload")
    assert node.store.pins() == []


def test_a_folder_that_is_no_model_bundle_is_refused(node: Node, requester: LocalAccount, tiny_bert: Path) -> None:
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}
        pickled = [*folder_parts(tiny_bert, "tiny-bert"), ("file", ("tiny-bert/pytorch_model.bin", b"x", "a/b"))]
        answer = api.post("/uploads/model", files=pickled, headers=auth)
        assert answer.status_code == 400 and "pytorch_model.bin is a pickle checkpoint" in answer.json()["detail"]
        no_weights = [part for part in folder_parts(tiny_bert, "tiny-bert") if not part[1][0].endswith(".safetensors")]
        answer = api.post("/uploads/model", files=no_weights, headers=auth)
        assert answer.status_code == 400
        assert answer.json()["detail"] == "model folder tiny-bert has no *.safetensors weights"
    assert node.store.pins() == []


def test_price_suggestion_from_indexed_jobs(chain: Chain, node: Node, requester: LocalAccount) -> None:
    def posted(task: str, num_tasks: int, price: int) -> int:
        spec = JobSpec(task=task, model=str(Cid.of(b"model", RAW)), inputs=str(Cid.of(b"inputs", RAW)),
                       num_tasks=num_tasks)
        spec_cid = str(node.store.add_bytes(spec.to_bytes()).cid)
        return chain.post(requester, spec_cid=spec_cid, num_tasks=num_tasks, price=price)

    with httpx.Client(base_url=f"{node.url}/v1") as api:
        empty = api.get("/prices", params={"task": "embed", "num_tasks": 16}).json()
        assert empty == {"task": "embed", "num_tasks": 16, "per_task_wei": None, "price_wei": None, "jobs": 0,
                         "basis": "none"}
        # A sample of 4 tasks may be worth 6.25 WEBI at most: prices of a fraction of a WEBI a task.
        posted("embed", 16, 16 * WEI // 10)  # 0.1 WEBI a task
        posted("embed", 32, 96 * WEI // 10)  # 0.3
        posted("embed", 4, WEI)  # 0.25
        posted("embed", 100, 20 * WEI)  # 0.2, over 4 times the size of 16
        posted("generate", 16, 16 * WEI)  # another task
        chain.post(requester, num_tasks=16, price=16 * WEI)  # a spec this store does not hold
        node.caught_up(chain.block_number())

        similar = api.get("/prices", params={"task": "embed", "num_tasks": 16}).json()
        assert similar == {"task": "embed", "num_tasks": 16, "per_task_wei": str(WEI // 4),
                           "price_wei": str(4 * WEI), "jobs": 3, "basis": "same task and size"}
        anything = api.get("/prices", params={"task": "embed", "num_tasks": 10_000}).json()
        assert (anything["basis"], anything["jobs"], anything["per_task_wei"]) == ("same task", 4, str(9 * WEI // 40))
        assert anything["price_wei"] == str(9 * WEI // 40 * 10_000)
        assert api.get("/prices", params={"task": "classify", "num_tasks": 16}).json()["basis"] == "none"
        refused = api.get("/prices", params={"task": "dance", "num_tasks": 16})
        assert refused.status_code == 400 and refused.json()["detail"].startswith("query.task:")


def test_the_routes_and_their_bodies_are_in_the_openapi_schema(node: Node) -> None:
    schema = httpx.get(f"{node.url}/openapi.json").json()
    paths = schema["paths"]
    upload = paths["/v1/uploads/inputs"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"] and upload["tags"] == ["web app"]
    assert upload["security"] == [{"HTTPBearer": []}]
    assert upload["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InputsBody"}
    assert paths["/v1/auth/challenge"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChallengeRequest"}
    assert {"SpecRequest", "SpecBody", "ModelBody", "SessionBody", "PriceBody", "ErrorBody"} <= set(
        schema["components"]["schemas"])


def test_hostile_bodies_get_a_4xx_and_the_node_lives_on(node: Node, requester: LocalAccount) -> None:
    """Nesting 100,000 deep overflowed the C stack inside json.loads (py_ecc raises the recursion limit) and killed
    the node; an integer of 5,000 digits raised a ValueError (a 500); U+2028 in an input split its manifest line."""
    deep = "[" * 100_000
    with httpx.Client(base_url=f"{node.url}/v1") as api:
        body = api.post("/auth/challenge", content=deep.encode(), headers={"content-type": "application/json"})
        assert 400 <= body.status_code < 500 and "detail" in body.json()
        huge = api.post("/auth/challenge", content=b"[" * (300 * 1024), headers={"content-type": "application/json"})
        assert huge.status_code == 413 and "262,144-byte limit" in huge.json()["detail"]
        auth = {"Authorization": f"Bearer {sign_in(api, requester)}"}
        nested = api.post("/uploads/inputs", files=inputs_file(['"fine"', deep]), headers=auth)
        assert nested.status_code == 400 and nested.json()["detail"].startswith("line 2: not usable JSON")
        digits = api.post("/uploads/inputs", files=inputs_file(["1" * 5_000]), headers=auth)
        assert digits.status_code == 400 and digits.json()["detail"].startswith("line 1: not usable JSON")
        separated = api.post("/uploads/inputs", files=inputs_file([json.dumps("a\u2028b", ensure_ascii=False)]),
                             headers=auth)
        assert separated.status_code == 200 and separated.json()["num_tasks"] == 1
        model = str(node.store.add_bytes(b"{}").cid)  # not a bundle: the spec is refused for the model, not the inputs
        spec = api.post("/uploads/spec", json={"task": "embed", "model": model, "inputs": separated.json()["cid"],
                                               "num_tasks": 1}, headers=auth)
        assert "inputs" not in spec.json()["detail"], spec.text
        assert api.get("/stats").status_code == 200  # still serving
