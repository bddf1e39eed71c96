"""download-weights against a real HTTP server on loopback that answers like the Hub."""

import hashlib
import socket

import pytest
from typer.testing import CliRunner

from hfdinterp.inference import registry as weights_registry
from hfdinterp.cli import app
from hfdinterp.inference.registry import KnownWeights
from tests.hub_server import FakeHub

PAYLOAD = b"pretend these are weights" * 100
ENTRY = KnownWeights(name="hfd-test", repo_id="hfdinterp/hfd-test", revision="v9", filename="hfd-test.safetensors",
                     sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD), description="test entry")
runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setitem(weights_registry.KNOWN_WEIGHTS, ENTRY.name, ENTRY)
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def _cached_files(tmp_path):
    return [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_download_success_then_listed_and_resolvable(tmp_path, monkeypatch):
    with FakeHub({"hfdinterp/hfd-test/v9/hfd-test.safetensors": PAYLOAD}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = runner.invoke(app, ["download-weights", "hfd-test"])
    assert result.exit_code == 0, result.output
    path = result.stdout.strip().splitlines()[-1]
    assert open(path, "rb").read() == PAYLOAD
    assert any("/resolve/v9/" in request for request in hub.requests)  # the pinned revision was asked for
    listing = runner.invoke(app, ["download-weights", "--list"])
    assert "hfd-test" in listing.stdout and "no" not in listing.stdout.split("hfd-test")[1].split("\n")[0]
    assert str(weights_registry.resolve_weights("hfd-test")) == path
    # offline now: still resolves from the cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert runner.invoke(app, ["download-weights", "hfd-test"]).exit_code == 0


def test_wrong_checksum_is_rejected_and_removed(tmp_path, monkeypatch):
    with FakeHub({"hfdinterp/hfd-test/v9/hfd-test.safetensors": b"tampered" * 50}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = runner.invoke(app, ["download-weights", "hfd-test"])
    assert result.exit_code == 1
    assert "checksum mismatch" in result.output and "Traceback" not in result.output
    assert not [p for p in _cached_files(tmp_path) if p.stat().st_size == len(b"tampered" * 50)]


def test_missing_file_is_a_clear_error(monkeypatch):
    with FakeHub({}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = runner.invoke(app, ["download-weights", "hfd-test"])
    assert result.exit_code == 1
    assert "not on the Hub" in result.output and "Traceback" not in result.output


def test_server_down_is_a_clear_error(monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = runner.invoke(app, ["download-weights", "hfd-test"])
    assert result.exit_code == 1
    assert "cannot reach the Hub" in result.output and "Traceback" not in result.output


def test_offline_without_cache_and_unknown_name(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["download-weights", "hfd-test"])
    assert result.exit_code == 1 and "HF_HUB_OFFLINE" in result.output
    result = runner.invoke(app, ["download-weights", "no-such-model"])
    assert result.exit_code == 1 and "unknown weights" in result.output
    result = runner.invoke(app, ["pair", "a.png", "b.png", "--weights", "hfd-test"])
    assert result.exit_code == 1


def test_unpublished_weights_are_not_fetched(monkeypatch):
    from dataclasses import replace

    monkeypatch.setitem(weights_registry.KNOWN_WEIGHTS, "hfd-draft", replace(ENTRY, name="hfd-draft", published=False))
    result = runner.invoke(app, ["download-weights", "hfd-draft", "--force"])
    assert result.exit_code == 1 and "not published on the Hub yet" in result.output
    listing = runner.invoke(app, ["download-weights", "--list"])
    assert "not published" in listing.stdout
