"""Secrets: what production refuses, and the demo's own random secrets."""

import os
import stat
from pathlib import Path

import pytest

from campuscard.config import SECRETS, Settings, env_name, unsafe_secrets, with_demo_secrets

STRONG = "k" * 32


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def _clear_env() -> None:
    for name in SECRETS:
        os.environ.pop(env_name(name), None)


@pytest.fixture(autouse=True)
def _no_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first, so the demo's exports are undone after each test
    for name in SECRETS:
        monkeypatch.setenv(env_name(name), "placeholder")
        monkeypatch.delenv(env_name(name))


def test_every_development_default_is_named() -> None:
    problems = unsafe_secrets(_settings())
    assert problems == [f"{env_name(n)} holds the development default" for n in SECRETS]


def test_short_secrets_are_named_with_their_length() -> None:
    problems = unsafe_secrets(
        _settings(
            master_key="x" * 31,
            provider_key=STRONG,
            bank_mac_key=STRONG,
            sms_api_secret=STRONG,
            utility_secret=STRONG,
        )
    )
    assert problems == ["CAMPUSCARD_MASTER_KEY is too short (31 characters, at least 32)"]


def test_a_renamed_development_value_is_still_refused() -> None:
    values = dict.fromkeys(SECRETS, STRONG)
    values["sms_api_secret"] = "dev-only-sms-secret-but-made-longer-than-32"
    assert unsafe_secrets(_settings(**values)) == [
        "CAMPUSCARD_SMS_API_SECRET holds the development default"
    ]


def test_real_secrets_pass() -> None:
    assert unsafe_secrets(_settings(**dict.fromkeys(SECRETS, STRONG))) == []


def test_the_demo_makes_random_secrets_once_and_keeps_them_private(tmp_path: Path) -> None:
    # given: a new demo data directory, the master key set by the person running it
    mine = "m" * 40
    settings = _settings(data_dir=tmp_path, master_key=mine)
    # when
    first = with_demo_secrets(settings)
    exported = os.environ["CAMPUSCARD_PROVIDER_KEY"]
    _clear_env()  # a later run is a new process
    again = with_demo_secrets(_settings(data_dir=tmp_path, master_key=mine))
    # then: safe, kept across runs, the given one untouched, and the file is the owner's only
    assert unsafe_secrets(first) == []
    assert first.master_key.get_secret_value() == mine
    for name in SECRETS:
        assert getattr(again, name).get_secret_value() == getattr(first, name).get_secret_value()
    path = tmp_path / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "CAMPUSCARD_MASTER_KEY" not in path.read_text()
    assert exported == first.provider_key.get_secret_value()
    # and another demo gets other secrets
    _clear_env()
    other = with_demo_secrets(_settings(data_dir=tmp_path / "other"))
    assert other.bank_mac_key.get_secret_value() != first.bank_mac_key.get_secret_value()


def test_device_tools_use_a_demo_secret_but_make_none(tmp_path: Path) -> None:
    assert with_demo_secrets(_settings(data_dir=tmp_path), create=False) == _settings(
        data_dir=tmp_path
    )
    assert not (tmp_path / "secrets.env").exists()
