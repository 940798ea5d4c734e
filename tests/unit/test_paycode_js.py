"""The phone's JavaScript generator (web/static/js/paycode.js) against the Python one: the same
code for the same secret and time, through Web Crypto and through the pure-JS SHA-256 fallback;
the same Code 128 bars; and the JS-drawn QR decodes back to the code. Runs the JS in Node."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image, ImageDraw

import campuscard
from campuscard.payments import code128, code_rules

JS_DIR = Path(campuscard.__file__).parent / "web" / "static" / "js"
NODE = shutil.which("node")

RUNNER = """
const fs = require('fs'), vm = require('vm');
vm.runInThisContext(fs.readFileSync(process.argv[2], 'utf8'));
vm.runInThisContext(fs.readFileSync(process.argv[3], 'utf8'));
(async () => {
  const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
  const out = [];
  for (const c of cases) {
    const step = CCPaycode.timeStep(c.unix_ms, c.step_seconds);
    out.push({
      step,
      subtle: await CCPaycode.generate(c.secret, c.token, step, c.counter, false, c.scheme),
      fallback: await CCPaycode.generate(c.secret, c.token, step, c.counter, true, c.scheme),
    });
  }
  const first = out[0].subtle;
  process.stdout.write(JSON.stringify({
    out,
    bars: CCPaycode.code128Modules(first),
    barsB: CCPaycode.code128Modules('CampusCard-42'),
    qr: CCPaycode.qrMatrix(first),
    sha_empty: Buffer.from(CCPaycode.sha256(new Uint8Array(0))).toString('hex'),
    sha_long: Buffer.from(CCPaycode.sha256(new TextEncoder().encode('a'.repeat(1000)))).toString('hex'),
  }));
})().catch((e) => { console.error(e); process.exit(1); });
"""

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_js(cases: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "runner.js"
    script.write_text(RUNNER)
    done = subprocess.run(
        [
            str(NODE),
            str(script),
            str(JS_DIR / "vendor" / "qrcode-generator-1.4.4.js"),
            str(JS_DIR / "paycode.js"),
        ],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_javascript_and_python_generate_the_same_codes(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    cases = []
    for i in range(300):
        cases.append(
            {
                "secret": rng.randbytes(32).hex(),
                "token": f"{rng.randrange(10**8):08d}",
                # from the epoch to far ahead, including exact step boundaries
                "unix_ms": rng.choice([0, 59_999, 60_000, rng.randrange(4_102_444_800_000)]),
                "step_seconds": rng.choice([30, 60, 60, 90]),
                "counter": i % 10,
                # a phone bound before scheme 6 keeps no scheme: its codes are scheme 7
                "scheme": rng.choice(["6", "7", None]),
            }
        )
    result = run_js(cases, tmp_path)
    for case, js in zip(cases, result["out"], strict=True):
        step = code_rules.time_step(case["unix_ms"] / 1000, case["step_seconds"])
        expected = code_rules.generate(
            bytes.fromhex(case["secret"]),
            case["token"],
            step,
            case["counter"],
            case["scheme"] or code_rules.SCHEME_DEVICE,
        )
        assert js["step"] == step
        assert js["subtle"] == expected, case
        assert js["fallback"] == expected, case
    first = result["out"][0]["subtle"]
    assert result["bars"] == code128.modules(first)
    assert result["barsB"] == code128.modules("CampusCard-42")
    assert result["sha_empty"] == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    import hashlib

    assert result["sha_long"] == hashlib.sha256(b"a" * 1000).hexdigest()


def test_the_qr_drawn_by_the_phone_page_decodes_back_to_the_code(tmp_path: Path) -> None:
    case = {
        "secret": "ab" * 32,
        "token": "13572468",
        "unix_ms": 1_790_000_000_000,
        "step_seconds": 60,
        "counter": 0,
    }
    result = run_js([case], tmp_path)
    code = result["out"][0]["subtle"]
    matrix = result["qr"]
    scale, border = 6, 4
    size = (len(matrix) + 2 * border) * scale
    img = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                x, y = (c + border) * scale, (r + border) * scale
                draw.rectangle([x, y, x + scale - 1, y + scale - 1], fill=0)
    decoded = zxingcpp.read_barcodes(img)
    assert [(b.text, b.format) for b in decoded] == [(code, zxingcpp.BarcodeFormat.QRCode)]
