"""Running ``webi`` in-process against a real devnet and store node, as a user with wallets would."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from marketplace.chain.devnet import Devnet
from marketplace.cli.main import app
from tests.support.jobs import PASSWORD


class Cli:
    def __init__(self, devnet: Devnet, home: Path, deployments: Path, store: str) -> None:
        self.home = home
        self.env = {"WEBI_HOME": str(home), "WEBI_STORE": store, "COLUMNS": "200"}
        self.base = ["--rpc-url", devnet.anvil.rpc_url]
        self.deployments = ["--deployments", str(deployments)]
        (home / "password").parent.mkdir(parents=True, exist_ok=True)
        (home / "password").write_text(PASSWORD + "\n")
        self.password = ["--password-file", str(home / "password")]

    def __call__(self, *args: str, deployments: bool = True, code: int = 0) -> str:
        result = CliRunner().invoke(app, [*self.base, *args, *(self.deployments if deployments else [])], env=self.env)
        assert result.exit_code == code, result.output + repr(result.exception)
        # An error reaches the user as one line (marketplace.cli.main.run); here it is the exception.
        return result.output + (str(result.exception) if result.exception else "")

    def import_wallet(self, name: str, account: LocalAccount) -> None:
        key = self.home / f"{name}.key"
        key.write_text(account.key.hex())
        self("wallet", "import", name, "--key-file", str(key), *self.password, deployments=False)

    def post(self, model: Path, inputs: Path, price: str, *extra: str, code: int = 0) -> str:
        """``webi job post`` of an embed job from wallet alice; the output (error text when it fails)."""
        return self("job", "post", "--task", "embed", "--model", str(model), "--inputs", str(inputs),
                    "--price", price, *extra, "--wallet", "alice", *self.password, code=code)

    @staticmethod
    def job_id(posted: str) -> int:
        return int(posted.split("posted job ")[1].split(":")[0])


def requester_cli(devnet: Devnet, deployments: Path, home: Path, store_url: str, account: LocalAccount) -> Cli:
    """A CLI whose wallet ``alice`` holds ``account``."""
    runner = Cli(devnet, home, deployments, store_url)
    runner.import_wallet("alice", account)
    return runner


def write_inputs(path: Path, texts: list[str]) -> Path:
    """``texts`` as a JSONL inputs file, as ``webi job post --inputs`` reads it."""
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return path
