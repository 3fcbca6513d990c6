"""V3 keystores: round trip, wrong password, and password sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.chain.devnet import dev_account
from marketplace.errors import ConfigError
from marketplace.keystore import load_account, read_password, save_account


def test_round_trip_and_wrong_password(tmp_path: Path) -> None:
    account = dev_account(5)
    path = save_account(account, tmp_path / "k.json", "pw", kdf="pbkdf2", iterations=1_000)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_account(path, "pw").address == account.address
    with pytest.raises(ConfigError, match="cannot decrypt"):
        load_account(path, "wrong")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        save_account(account, path, "pw")


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBI_TEST_PASSWORD", "from-env")
    assert read_password(env="WEBI_TEST_PASSWORD") == "from-env"
    (tmp_path / "pw").write_text("from-file\nignored\n")
    assert read_password(file=tmp_path / "pw") == "from-file"
    with pytest.raises(ConfigError, match="WEBI_UNSET_PASSWORD is not set"):
        read_password(env="WEBI_UNSET_PASSWORD")
    with pytest.raises(ConfigError, match="no keystore password source"):
        read_password()
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not a V3 keystore"):
        load_account(tmp_path / "bad.json", "pw")
