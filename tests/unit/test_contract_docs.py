"""The contract docs pages: their Python and Node snippets verify the golden vectors, and
their vector sections match vectors.json."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contracts"
VECTORS: list[dict[str, Any]] = json.loads((DOCS / "vectors.json").read_text("utf-8"))
CONTRACTS = ["crewpass", "crewship", "cr3dentials", "wallet-crew", "standard-webhooks"]


def snippet(contract: str, language: str) -> str:
    text = (DOCS / f"{contract}.md").read_text("utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, f"{contract}.md should hold exactly one {language} snippet"
    return str(blocks[0])


def cases(contract: str) -> list[tuple[list[str], dict[str, str], str, bool]]:
    """(secrets, headers, body, expected) for every vector, plus tampered and wrong-secret ones."""
    out = []
    for vector in (v for v in VECTORS if v["contract"] == contract):
        headers, body = vector["headers"], vector["body"]
        out.append(([vector["secret"]], headers, body, True))
        if vector["previous_secret"]:
            out.append(([vector["previous_secret"]], headers, body, True))
        wrong = "whsec_" + "B" * 32 if contract == "standard-webhooks" else "z" * 32
        out.append(([wrong], headers, body, False))
        if contract != "cr3dentials":  # a static credential does not cover the body
            tampered = body.replace('"', "'", 1) if contract == "wallet-crew" else body + " "
            out.append(([vector["secret"]], headers, tampered, False))
    return out


def vector_time(contract: str) -> int:
    return int(next(v for v in VECTORS if v["contract"] == contract)["timestamp"])


@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_python_snippet_verifies_the_vectors_and_refuses_forgeries(
    contract: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(snippet(contract, "python"), f"{contract}.md", "exec"), namespace)
    monkeypatch.setattr("time.time", lambda: float(vector_time(contract)))
    for secrets, headers, body, expected in cases(contract):
        assert namespace["verify_webhook"](secrets, headers, body.encode()) is expected


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_node_snippet_verifies_the_vectors_and_refuses_forgeries(contract: str) -> None:
    runner = snippet(contract, "js") + """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
Date.now = () => input.now * 1000;
console.log(JSON.stringify(input.cases.map(([secrets, headers, body]) => {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return verifyWebhook(secrets, lower, Buffer.from(body, "utf8"));
})));
"""
    all_cases = cases(contract)
    result = subprocess.run(
        ["node", "-e", runner], input=json.dumps({"now": vector_time(contract), "cases": all_cases}),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [expected for *_, expected in all_cases]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contract_vectors", DOCS / "vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vectors_json_is_what_the_generator_writes() -> None:
    assert _generator().vectors() == VECTORS


@pytest.mark.parametrize("contract", CONTRACTS)
def test_each_page_shows_the_current_vectors(contract: str) -> None:
    text = (DOCS / f"{contract}.md").read_text("utf-8")
    assert _generator().fill_page(text, contract, VECTORS) == text
    single = next(v for v in VECTORS if v["name"] == f"{contract}/single-secret")
    assert json.dumps(single["body"], ensure_ascii=False) in text
