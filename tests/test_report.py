"""``spikeforge report``: every section is there (or says how to make it), the Markdown
twin holds the same with its PNGs, stored results are found, bad paths are refused, and
the page, opened in headless Chromium, shows every section and makes no request.

The network is a small 64-16-10 run on scikit-learn's 8x8 digits (trained in seconds,
no data files needed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.report import SECTION_IDS, ReportOptions, make_report

ROOT = Path(__file__).resolve().parents[1]
DIGITS = {"dataset": "digits", "hidden": [16], "epochs": 10, "lr": 0.01, "input_scale": 3.0,
          "batch_size": 32, "augment_shift": 0, "dropout": 0.0}
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,2400")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from spikeforge.config import TrainConfig
    from spikeforge.train import fit

    out = tmp_path_factory.mktemp("report") / "run"
    fit(TrainConfig.from_dict(DIGITS), out, progress=False, plots=False,
        command=["spikeforge", "train", "--dataset", "digits", "--hidden", "16"])
    return out


@pytest.fixture(scope="module")
def run_report(run_dir) -> dict:
    """The report of a run alone (a bundle is exported on the fly), with Markdown."""
    return make_report(ReportOptions(path=str(run_dir), markdown=str(run_dir / "md"),
                                     images=2, boards=3, progress=False))


def _sections(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def test_a_run_report_has_every_section_in_order_and_nothing_external(run_dir, run_report):
    html_path = Path(run_report["html"])
    assert html_path == run_dir / "report.html"  # the default place
    html = html_path.read_text()
    assert _sections(html) == list(SECTION_IDS)
    # core sections are filled; verification and Pareto say how to make them
    for key in ("network", "schematic", "timing", "encoding", "training", "confusion",
                "activity", "receptive-fields", "accuracy", "bom", "provenance"):
        assert run_report["sections"][key], key
    for key in ("spice", "rtl", "pareto"):
        assert not run_report["sections"][key]
        assert run_report["missing"][key]["how"]
    assert "spikeforge spice BUNDLE" in html and "benchmarks/pareto.py" in html
    # self-contained: no URL to load anything from; figures are data: URIs; the CSP
    # forbids requests anyway
    assert not re.search(r'\b(src|href)="(?!data:|#)', html)
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html)
    assert "default-src 'none'" in html
    assert html.count('src="data:image/png;base64,') >= 6
    # the schematic is inline SVG with real part values; the BOM has its total
    schematic = html[html.index('<section id="schematic"'):html.index('<section id="timing"')]
    assert "<svg" in schematic and "kΩ" in schematic
    bom = html[html.index('<section id="bom"'):html.index('<section id="spice"')]
    assert "<tfoot>" in bom and "all parts" in bom
    # accuracy of the float model, the twin and both tolerances of boards
    accuracy = html[html.index('<section id="accuracy"'):html.index('<section id="pareto"')]
    for what in ("float model", "analog twin", "1% resistors", "5% resistors"):
        assert what in accuracy
    # the commands and versions that made it
    provenance = html[html.index('<section id="provenance"'):]
    assert "spikeforge train --dataset digits --hidden 16" in provenance
    assert "spikeforge export" in provenance and "spikeforge report" in provenance
    assert "numpy" in provenance and "torch" in provenance


def test_the_markdown_twin_holds_the_same_sections_and_its_pngs(run_report):
    md_path = Path(run_report["markdown"])
    text = md_path.read_text()
    assert re.findall(r'<a id="([^"]+)"></a>', text) == list(SECTION_IDS)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 7 and any("neuron" in i for i in images)
    for name in images:
        assert (md_path.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "Not available:" in text and "How to produce it:" in text


def test_the_traces_are_the_contract_spike_for_spike():
    """The rasters and membranes come from spec.lif_step: the spikes equal
    reference_forward's, and U reaches the threshold exactly where a neuron spikes."""
    from spikeforge.report.collect import trace_contract
    from spikeforge.spec import NetworkSpec, NeuronSpec, reference_forward

    rng = np.random.default_rng(1)
    for reset in ("zero", "subtract"):
        spec = NetworkSpec((12, 9, 4), timesteps=15,
                           neuron=NeuronSpec(decay=0.9, threshold=1.0, reset=reset,
                                             refractory=1))
        weights = [rng.normal(0, 0.8, s) for s in spec.weight_shapes]
        biases = [rng.normal(0, 0.1, s[0]) for s in spec.weight_shapes]
        x = rng.random((5, 12))
        spikes, membranes = trace_contract(spec, weights, biases, x)
        reference = reference_forward(weights, biases, x * spec.encoding.scale, spec)
        for layer, (s, u) in enumerate(zip(spikes, membranes, strict=True)):
            np.testing.assert_array_equal(s, np.stack(reference[layer]))
            assert (u[s] >= 1.0 - 1e-12).all()


def test_a_bundle_report_finds_stored_results_and_runs_no_monte_carlo(run_dir, tmp_path):
    """Given only a bundle: its stored Monte Carlo, SPICE and Pareto results are shown
    (and none is recomputed), and the run it names supplies the training curves."""
    from spikeforge.hardware.export import export

    bundle = tmp_path / "bundle"
    export(run_dir, bundle, "analog")
    for tol in (0.01, 0.05):
        (bundle / f"monte_carlo_{round(tol * 100)}pct.json").write_text(json.dumps({
            "boards": 4, "n": 450, "seed": 0, "mean": 0.9, "median": 0.9, "p5": 0.88,
            "worst": 0.87, "best": 0.92, "std": 0.01, "ideal": 0.91, "nominal": 0.91,
            "options": {"resistor_tolerance": tol, "capacitor_tolerance": 0.05},
            "accuracies": [0.87, 0.9, 0.9, 0.92]}))
    (bundle / "spice.json").write_text(json.dumps({
        "n": 3, "ok": True, "dataset": "digits", "ngspice": {"seconds": 4.0, "resistors": 12,
                                                             "neurons": 26},
        "board": {"identical_counts": 3, "identical_predictions": 3,
                  "differing_spikes": [0, 0]}}))
    (tmp_path / "pareto.jsonl").write_text(
        '{"total_parts": 900, "mc_p5": 0.9, "mc_median": 0.91, "layers": [49, 16, 10]}\n'
        '{"total_parts": 3000, "mc_p5": 0.95, "mc_median": 0.96, "layers": [196, 32, 10]}\n'
        "| a markdown table line that pareto.py also prints |\n")
    result = make_report(ReportOptions(bundle=str(bundle), images=1, boards=0,
                                       progress=False))
    html = Path(result["html"]).read_text()
    assert Path(result["html"]) == bundle / "report.html"
    assert _sections(html) == list(SECTION_IDS)
    assert result["sections"]["training"]  # from the run named in spec.json
    assert result["sections"]["spice"] and result["sections"]["pareto"]
    assert "PASSED" in html and f"stored in {bundle}/monte_carlo_1pct.json" in html
    assert "drawn now" not in html
    assert not result["sections"]["rtl"]


def test_a_digital_bundle_reports_its_rtl_result_and_no_analog_parts(run_dir, tmp_path):
    from spikeforge.hardware.export import export

    bundle = tmp_path / "digital"
    export(run_dir, bundle, "digital")
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "rtl_result.json").write_text(json.dumps({
        "passed": True, "images": 20, "cycles_per_inference": 1234, "mismatch": 0,
        "synthesis": {"cells": 5000, "flip_flops": 300, "memory_bits": 10000}}))
    out = tmp_path / "d.html"
    assert main(["report", str(bundle), "--rtl", str(rtl), "--out", str(out), "--images", "1",
                 "--no-progress"]) == 0
    html = out.read_text()
    assert _sections(html) == list(SECTION_IDS)
    rtl_part = html[html.index('<section id="rtl"'):html.index('<section id="provenance"')]
    assert "PASSED" in rtl_part and "1234" in rtl_part and "flip flops" in rtl_part
    schematic = html[html.index('<section id="schematic"'):html.index('<section id="timing"')]
    assert "digital bundle" in schematic and "<svg" not in schematic
    accuracy = html[html.index('<section id="accuracy"'):html.index('<section id="pareto"')]
    assert "bit-exact" in accuracy  # no Monte Carlo on a digital target, and it says why


def test_missing_test_data_is_shown_as_missing_with_the_fix(run_dir, tmp_path, monkeypatch):
    from spikeforge.errors import DatasetError
    from spikeforge.report import collect

    def no_data(_data):
        raise DatasetError("digits: the files are missing")

    monkeypatch.setattr(collect, "_load_test_data", no_data)
    result = make_report(ReportOptions(run=str(run_dir), out=str(tmp_path / "r.html"),
                                       progress=False))
    for key in ("confusion", "activity"):
        assert not result["sections"][key]
        assert "spikeforge data fetch digits" in result["missing"][key]["how"]
    html = (tmp_path / "r.html").read_text()
    assert _sections(html) == list(SECTION_IDS)
    assert "the test set cannot be loaded" in html


def test_bad_paths_and_options_are_refused_with_exit_code_2(run_dir, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text('{"x": 1}')
    cases = [
        ["report", str(tmp_path / "nowhere")],
        ["report", str(run_dir / "checkpoint.pt")],
        ["report", str(tmp_path)],                          # neither run nor bundle
        ["report", "--bundle", str(run_dir)],               # a run passed as a bundle
        ["report", str(run_dir), "--out", str(tmp_path)],   # a folder
        ["report", str(run_dir), "--out", str(tmp_path / "r.txt")],
        ["report", str(run_dir), "--rtl", str(tmp_path)],   # no rtl_result.json there
        ["report", str(run_dir), "--spice", str(tmp_path / "none.json")],
        ["report", str(run_dir), "--spice", str(other)],    # not spikeforge spice's JSON
        ["report", str(run_dir), "--pareto", str(other)],   # not pareto.py's rows
        ["report", str(run_dir), "--boards", "-1"],
        ["report"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("spikeforge: error: ") and "Traceback" not in err, argv
    assert not (run_dir / "r.txt").exists()


# ------------------------------------------------------------------ headless Chromium


def _browser_paths() -> tuple[str, str]:
    chromium = next((p for p in CHROMIUM if Path(p).exists()), shutil.which("chromium"))
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    if chromium is None or driver is None:
        pytest.skip("headless Chromium test needs Debian's `chromium` and `chromium-driver` "
                    "packages (apt-get install chromium chromium-driver)")
    return chromium, driver


def _artifacts_dir() -> Path | None:
    """Where CI keeps the screenshot: $SPIKEFORGE_ARTIFACTS, else runs/ci-artifacts under
    CI (git-ignored), else nowhere beyond the run directory."""
    if os.environ.get("SPIKEFORGE_ARTIFACTS"):
        return Path(os.environ["SPIKEFORGE_ARTIFACTS"])
    if os.environ.get("CI"):
        return ROOT / "runs" / "ci-artifacts"
    return None


def _requests(browser) -> list[dict]:
    """The DevTools ``Network.requestWillBeSent`` events since the last call."""
    events = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
    return [e["params"] for e in events if e["method"] == "Network.requestWillBeSent"]


def _outside(requests: list[dict]) -> list[str]:
    return [r["request"]["url"] for r in requests
            if re.match(r"(https?|wss?|ftp):", r["request"]["url"])]


def test_the_page_in_headless_chromium_shows_every_section_and_requests_nothing(run_dir,
                                                                               run_report,
                                                                               tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="the browser test needs selenium (pip install "
                                           "-e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser_paths()
    html_path = Path(run_report["html"]).resolve()
    page = html_path.as_uri()
    # a page that does fetch something, to show that the check below would see it
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://192.0.2.1/x.png"></body></html>')
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="spikeforge-chromium-")
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # the performance log carries the DevTools Network events of every request
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        browser.get(page)
        ids = browser.execute_script(
            "return Array.from(document.querySelectorAll('section')).map(s => s.id)")
        assert ids == list(SECTION_IDS)
        for section in SECTION_IDS:
            assert browser.find_element("id", section).is_displayed()
        # the script ran: the explorer drew its canvases
        explorer = browser.find_element("id", "explorer")
        assert explorer.get_attribute("data-rendered") == "true"
        assert len(explorer.find_elements("tag name", "canvas")) >= 3
        # every image decoded (a broken data: URI has naturalWidth 0)
        assert browser.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        screenshot = run_dir / "report-screenshot.png"
        assert browser.save_screenshot(str(screenshot))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        requests = _requests(browser)
        browser.get(control.as_uri())
        control_requests = _requests(browser)
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert not errors, errors
    mine = [r["request"]["url"] for r in requests if r.get("documentURL") == page]
    assert page in mine
    assert all(url.startswith(("file:", "data:")) for url in mine), mine
    # nothing at all left the machine, from the page or from the browser
    assert not _outside(requests), _outside(requests)
    assert _outside(control_requests) == ["http://192.0.2.1/x.png"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = _artifacts_dir()
    if artifacts is not None:
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy2(screenshot, artifacts / "report-screenshot.png")
        shutil.copy2(html_path, artifacts / "report.html")
