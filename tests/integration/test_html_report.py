"""The HTML report: one self-contained page, verdict first, plots inline; and, in a real
headless Chromium, plots that actually render where the page puts them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the HTML report needs the html extra (matplotlib)")

CHROMIUM_HINT = ("headless Chromium not found; install it with `apt-get install -y chromium` "
                 "(.ci/run does) to run the browser test")


@pytest.fixture(scope="module")
def failing_page(tmp_path_factory: pytest.TempPathFactory, dense_model: Path,
                 dense_changed: Path) -> Path:
    from typer.testing import CliRunner

    from snapshot_tool.cli import app

    tmp = tmp_path_factory.mktemp("html")
    golden = tmp / "g.h5"
    runner = CliRunner()
    assert runner.invoke(app, ["record", str(dense_model), "--golden", str(golden),
                               "--num-samples", "32", "--latency-batch-sizes", "4"]
                         ).exit_code == 0
    page = tmp / "report" / "report.html"
    res = runner.invoke(app, ["compare", str(dense_changed), "--golden", str(golden),
                              "--html", str(page)])
    assert res.exit_code == 1, res.stdout
    return page


def test_page_is_self_contained_with_verdict_first(failing_page: Path) -> None:
    text = failing_page.read_text(encoding="utf-8")
    # No network: no scripts, no stylesheets or images from elsewhere, no CDN.
    assert "<script" not in text and "<link" not in text and "<img" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", text)
    assert "url(http" not in text and "@import" not in text
    assert text.index('id="verdict"') < text.index("<svg")
    assert "FAIL" in text[:text.index("<svg")]
    # Per failing output: histogram and scatter; then the latency plot of the one batch size.
    assert text.count("<svg") == 2 * 2 + 1
    for label in ("error histogram logits", "scatter logits", "error histogram score",
                  "latency batch 4"):
        assert f'aria-label="{label}"' in text
    assert "Worst rows" in text and "snapshot-tool accept" in text
    assert "g.obtained.h5" in text


def test_passing_page_and_show_html(cli, dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--num-samples", "16",
               "--latency-batch-sizes", "2").code == 0
    res = cli("compare", dense_model, "--golden", golden, "--no-latency",
              "--html", tmp_path / "ok.html")
    assert res.code == 0, res
    ok = (tmp_path / "ok.html").read_text(encoding="utf-8")
    assert 'class="verdict v-pass"' in ok and "PASS" in ok
    # With --html every numeric output gets its plots, passing or not.
    assert 'aria-label="error histogram logits"' in ok
    shown = cli("show", golden, "--html", tmp_path / "golden.html")
    assert shown.code == 0, shown
    page = (tmp_path / "golden.html").read_text(encoding="utf-8")
    assert 'aria-label="values logits"' in page and 'aria-label="stored latency' in page


def test_html_write_error_is_a_usage_error(cli, dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency",
               "--num-samples", "8").code == 0
    (tmp_path / "blocker").write_text("a file, not a folder")
    res = cli("compare", dense_model, "--golden", golden, "--no-latency",
              "--html", tmp_path / "blocker" / "r.html")
    assert res.code == 2 and res.stderr.startswith("error: ")


# --- real browser ----------------------------------------------------------------------------

_PROBE = """<script>
window.addEventListener("load", () => {
  const boxes = [...document.querySelectorAll("figure.plot svg")].map((s) => {
    const r = s.getBoundingClientRect();
    return [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.round).join(",");
  });
  document.body.setAttribute("data-boxes", boxes.join(";"));
  document.body.setAttribute("data-height", document.documentElement.scrollHeight);
});
</script>"""

WIDTH = 1280


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe is not None
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start;
    # --disable-dev-shm-usage: containers often give /dev/shm 64 MB, too little to render.
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--force-device-scale-factor=1",
                           "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=180, check=True)


def test_plots_render_in_headless_chromium(failing_page: Path, tmp_path: Path) -> None:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip(CHROMIUM_HINT)
    from PIL import Image

    # A probe copy of the page reports where the browser laid out each plot; the page
    # itself carries no script.
    probe = tmp_path / "probe.html"
    probe.write_text(failing_page.read_text(encoding="utf-8").replace(
        "</body>", _PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri()).stdout
    boxes_attr = re.search(r'data-boxes="([^"]*)"', dom)
    height_attr = re.search(r'data-height="(\d+)"', dom)
    assert boxes_attr and height_attr, dom[:500]
    boxes = [tuple(int(v) for v in b.split(",")) for b in boxes_attr.group(1).split(";")]
    assert len(boxes) == 5
    height = min(int(height_attr.group(1)), 16000)
    shot = tmp_path / "report.png"
    _chromium(f"--window-size={WIDTH},{height}", f"--screenshot={shot}", failing_page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape[1] == WIDTH

    def ink(x: int, y: int, w: int, h: int) -> float:
        region = pixels[y:y + h, x:x + w]
        assert region.size, (x, y, w, h)
        return float((region < 200).mean())

    for x, y, w, h in boxes:
        assert w > 200 and h > 150  # laid out at a readable size
        assert y + h <= pixels.shape[0]
        # Axes, bars, points and labels: a drawn plot inks a few percent of its box at the
        # very least; a blank or broken one inks nothing.
        assert ink(x, y, w, h) > 0.02, (x, y, w, h)
        assert pixels[y:y + h, x:x + w].std() > 20
    # The verdict banner is on top and red (FAIL).
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int64)
    banner = rgb[60:130, 100:1100].reshape(-1, 3)
    red = (banner[:, 0] > 150) & (banner[:, 1] < 90) & (banner[:, 2] < 90)
    assert red.mean() > 0.5
    # Control: the page margin beside the content is blank, so ink() does tell.
    assert ink(WIDTH - 40, 0, 40, min(height, 2000)) < 0.001
