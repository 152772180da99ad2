"""A planted API key and secret never appear in any log line, whoever logs them and however."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kestrel.config.loading import load_config, secret_values
from kestrel.core.logs import REDACTED, clear_secrets, configure_logging, get_logger, register_secrets

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


@pytest.fixture
def secrets_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KESTREL__VENUE__API_KEY", API_KEY)
    monkeypatch.setenv("KESTREL__VENUE__API_SECRET", API_SECRET)
    config = load_config(None, overrides={"environment": "dev"}, env_file=None)
    register_secrets(secret_values(config))
    yield
    clear_secrets()
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_kestrel", False)]


def test_secrets_never_reach_a_log_line(secrets_registered: None, tmp_path: Path) -> None:
    # configured inside the test: pytest restores the root level after fixture setup
    captured = io.StringIO()
    configure_logging("DEBUG", "json", stream=captured, file=tmp_path / "log.jsonl")
    log = get_logger("kestrel.test")
    log.info("signing request", api_key=API_KEY, header=f"X-MBX-APIKEY: {API_KEY}")
    log.warning(f"secret inline {API_SECRET}")
    logging.getLogger("aiohttp.client").error("third party says %s and %s", API_KEY, API_SECRET)
    register_secrets(["p+ss/word=42"])
    logging.getLogger("urllib").info("url-encoded %s in a query", "p%2Bss%2Fword%3D42")
    try:
        raise RuntimeError(f"failed with key {API_KEY}")
    except RuntimeError:
        logging.getLogger("kestrel.x").exception("boom")
        log.exception("structured boom")
    text = captured.getvalue() + (tmp_path / "log.jsonl").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 10  # every record reached both handlers
    assert API_KEY not in text and API_SECRET not in text
    assert "p%2Bss%2Fword%3D42" not in text
    assert text.count(REDACTED) >= 8
    assert "RuntimeError" in text  # the traceback is still there, redacted


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from kestrel.config.loading import masked_dict

    monkeypatch.setenv("KESTREL__VENUE__API_SECRET", API_SECRET)
    config = load_config(None, overrides={"environment": "dev"}, env_file=None)
    assert API_SECRET not in repr(config) and API_SECRET not in str(masked_dict(config))
    assert config.venue.api_secret is not None and config.venue.api_secret.get_secret_value() == API_SECRET
