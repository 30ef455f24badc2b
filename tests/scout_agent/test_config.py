"""The env file is refused, with how to fix it, when others could read or change it, when root
does not own it (the agent running as root), for http:// and without a key; the key is never
shown but for its last four characters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scout_agent.config import ConfigError, load, mask
from scout_agent.envfile import parse, set_values, update_file
from tests.scout_agent.support import env_text, write_env

KEY = "0123456789abcdef" * 3 + "00000000deadbeef"
URL = "https://scout.example.com"


def env_file(tmp_path: Path, text: str | None = None, mode: int = 0o600) -> Path:
    return write_env(tmp_path / "agent.env", text or env_text(KEY, URL, tmp_path, None), mode)


def refusal(path: Path, euid: int = 0) -> str:
    with pytest.raises(ConfigError) as caught:
        load(str(path), euid)
    message = str(caught.value)
    assert KEY not in message
    return message


def test_a_good_file_loads_and_hides_the_key(tmp_path: Path) -> None:
    config = load(str(env_file(tmp_path)), euid=0)
    assert config.api_key == KEY and config.url == URL and config.interval == 10
    assert KEY not in repr(config) and "...beef" in repr(config)
    assert config.key_hint == "...beef" == mask(KEY)


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o644, "group and others"), (0o640, "group"), (0o660, "group"), (0o602, "others")],
)
def test_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int, who: str) -> None:
    path = env_file(tmp_path, mode=mode)
    message = refusal(path)
    assert who in message and f"{mode:04o}" in message and f"chmod 600 {path}" in message


def test_not_owned_by_root_is_refused_when_running_as_root(tmp_path: Path) -> None:
    path = env_file(tmp_path)
    os.chown(path, 65534, 65534)
    message = refusal(path, euid=0)
    assert "uid 65534" in message and f"chown root:root {path}" in message
    # The same file is fine for the user who owns it.
    assert load(str(path), euid=65534).api_key == KEY


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    path = env_file(directory)
    directory.chmod(0o777)
    assert f"chmod go-w {directory}" in refusal(path)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://scout.example.com", "http://"),
        ("ftp://scout.example.com", "https://"),
        ("https://", "https://"),
        ("", "SCOUTURL is missing"),
    ],
)
def test_only_https_urls(tmp_path: Path, url: str, expected: str) -> None:
    text = env_text(KEY, url, tmp_path, None)
    assert expected in refusal(env_file(tmp_path, text))


def test_missing_or_malformed_key(tmp_path: Path) -> None:
    text = f"SCOUTURL={URL}\n"
    assert "SCOUTAPIKEY is missing" in refusal(env_file(tmp_path, text))
    text = env_text(KEY[:-1] + "z", URL, tmp_path, None)
    message = refusal(env_file(tmp_path, text))
    assert "64 hexadecimal" in message and KEY[:-1] not in message


def test_missing_file_and_bad_numbers(tmp_path: Path) -> None:
    assert "scout-agent install" in refusal(tmp_path / "absent.env")
    text = env_text(KEY, URL, tmp_path, None, SCOUTINTERVAL="soon")
    assert "SCOUTINTERVAL" in refusal(env_file(tmp_path, text))


def test_env_file_rewrite_keeps_everything_else(tmp_path: Path) -> None:
    text = "# comment\nexport SCOUTAPIKEY='old'\n\nSCOUTURL=https://a\nSCOUTAPIKEY=dup\nOTHER=1\n"
    assert parse(text)["SCOUTAPIKEY"] == "dup"
    assert set_values(text, {"SCOUTAPIKEY": "new", "SCOUTCAFILE": "/ca.pem"}) == (
        "# comment\nexport SCOUTAPIKEY=new\n\nSCOUTURL=https://a\nOTHER=1\nSCOUTCAFILE=/ca.pem\n"
    )
    path = tmp_path / "agent.env"
    path.write_text(text)
    path.chmod(0o640)
    os.chown(path, 0, 65534)
    update_file(str(path), {"SCOUTAPIKEY": "new"})
    info = path.stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o640, 0, 65534)
    assert parse(path.read_text())["SCOUTAPIKEY"] == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["agent.env"]  # no temporary left behind
