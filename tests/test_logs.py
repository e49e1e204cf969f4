"""Log lines never carry a secret: captured as the JSON a worker writes to stderr, in a child
process so the global logging set-up of the test run is left alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import Settings
from bot.logs import settings_secrets

GHS = "ghs_" + "Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2J3k4"
WEBHOOK = "whk-" + "r0t4t3d-v4lu3-x9"

CHILD = """
import json, logging, sys
import structlog
from bot.logs import configure

known = json.loads(sys.argv[1])
configure("json", "info", known=known["values"])
log = structlog.get_logger("t")
log.info("clone.failed", error="https://x-access-token:" + known["ghs"] + "@github.com/o/r.git")
log.info("key.loaded", detail=known["pem"])
log.info("nested", data={"urls": ["Bearer " + known["ghs"]]}, attempt=2, ok=True)
log.info("webhook", note="secret was " + known["webhook"])
logging.getLogger("httpx").info("HTTP Request: GET %s", "https://h/?t=" + known["ghs"])
try:
    raise RuntimeError("boom " + known["webhook"])
except RuntimeError:
    log.exception("failed")
    logging.getLogger("uvicorn").exception("crash")
"""


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def test_every_log_line_is_redacted_by_pattern_and_by_known_value(tmp_path: Path) -> None:
    pem = _pem()
    # The key is known but also logged as one of its lines, and as a JSON-escaped string.
    known = {"values": [pem, WEBHOOK], "pem": pem, "ghs": GHS, "webhook": WEBHOOK}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(known)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    err = child.stderr
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    # Every line is JSON, the stdlib's (httpx, uvicorn) too; the message is under `msg`.
    ours = [line for line in lines if "logger" not in line]
    stdlib = {line["logger"]: line for line in lines if "logger" in line}
    assert [line["msg"] for line in ours] == [
        "clone.failed",
        "key.loaded",
        "nested",
        "webhook",
        "failed",
    ]
    assert GHS not in err and WEBHOOK not in err
    assert all(part not in err for part in pem.splitlines()[1:-1])
    assert "BEGIN RSA PRIVATE KEY" not in err
    assert lines[0]["error"] == "https://x-access-token:[REDACTED:github-token]@github.com/o/r.git"
    assert lines[2]["attempt"] == 2 and lines[2]["ok"] is True
    assert stdlib["httpx"]["msg"].startswith("HTTP Request: GET https://h/?t=[REDACTED")
    assert stdlib["uvicorn"]["msg"] == "crash"
    assert "RuntimeError: boom [REDACTED]" in stdlib["uvicorn"]["exception"]
    assert "RuntimeError: boom [REDACTED]" in ours[4]["exception"]


def test_settings_secrets_holds_the_webhook_secrets_and_the_private_key(tmp_path: Path) -> None:
    pem = _pem()
    key_path = tmp_path / "app.pem"
    key_path.write_text(pem)
    settings = Settings(webhook_secret=[WEBHOOK, "second-secret"], private_key_path=key_path)
    assert {WEBHOOK, "second-secret", pem} <= set(settings_secrets(settings))
