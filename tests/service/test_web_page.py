"""The web page in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) against
a real ``shotfit serve`` (uvicorn, local Ray, SQLite, temporary storage): the whole flow a studio walks on a
tiny shot, asserted on what the user sees; screenshots of each stage are kept in the test's temporary folder.
"""

from __future__ import annotations

import base64
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the test extra)")

from live_server import LiveServer, live_server  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from service_helpers import TINY_SETTINGS  # noqa: E402
from shots import PNG8, disc_plate, grade, write_graded_shot  # noqa: E402

from shotfit.io import write_image  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
STEPS = 30
ORANGE = (242, 165, 65)  # the "total" loss curve's colour on the chart


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("web-server")) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them as root: "
                    "scripts/test-services.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,2000", "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'chrome'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, where CSP reports land
    # the driver's path is given: Selenium Manager never looks for (or downloads) a browser or driver
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                           "downloadPath": str(tmp_path / "downloads")})
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP_VIOLATIONS})
    try:
        yield driver
    finally:
        driver.quit()


# run by the browser before the page's own scripts (DevTools scripts are outside the page's policy)
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`));
"""


def csp_violations(browser: webdriver.Chrome) -> list[str]:
    """What the page's Content-Security-Policy refused, from the page's events and the browser's console."""
    logged = [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in
              entry["message"] or "Content-Security-Policy" in entry["message"]]
    return [*browser.execute_script("return window.cspViolations"), *logged]


class Page:
    """What the user sees, read from the page; screenshots numbered in order."""

    def __init__(self, driver: webdriver.Chrome, shots: Path) -> None:
        self.driver, self.shots, self.count = driver, shots, 0
        shots.mkdir()

    def __call__(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self(css).text

    def wait(self, what: Callable[[], object], timeout: float = 60.0, about: str = "") -> object:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if value := what():
                    return value
            except WebDriverException:
                pass
            if time.monotonic() > deadline:
                self.screenshot("timed-out")
                raise AssertionError(f"waited {timeout} s for {about}; the page says: {self.text('main')[:2000]}"
                                     f"\nmessage: {self.text('#message')!r}")
            time.sleep(0.2)

    def wait_text(self, css: str, words: str, timeout: float = 60.0) -> str:
        return self.wait(lambda: words in self.text(css) and self.text(css), timeout, f"{words!r} in {css}")

    def screenshot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def image(self, css: str) -> np.ndarray:
        """The element as shown (RGB float in [0, 1])."""
        codes = cv2.imdecode(np.frombuffer(self(css).screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(codes, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def finished(status: str) -> str:
    """The job's status line once it names a final state ("train · succeeded · step 30 / 30 ..."), else ''."""
    return status if any(f" · {state}" in status for state in ("succeeded", "failed", "cancelled")) else ""


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def shown_as(shown: np.ndarray, frame: np.ndarray) -> float:
    """Mean absolute difference between a frame as the page shows it (scaled up) and the frame's pixels."""
    height, width = frame.shape[:2]
    return float(np.abs(cv2.resize(shown, (width, height), interpolation=cv2.INTER_AREA) - frame).mean())


def curve_pixels(page: Page) -> int:
    """Pixels in the chart's right half drawn in the total loss's colour (the legend is on the left): a curve
    that a user sees reach across the chart as the steps go by."""
    chart = page.image("#loss-chart")
    right = chart[:, chart.shape[1] // 2:]
    return int((np.abs(right * 255 - np.array(ORANGE)).max(axis=-1) < 40).sum())


def wait_download(folder: Path, name: str, timeout: float = 30.0) -> Path:
    deadline, path = time.monotonic() + timeout, folder / name
    while not (path.is_file() and not list(folder.glob("*.crdownload"))):
        assert time.monotonic() < deadline, f"no download {name} in {folder}: {list(folder.glob('*'))}"
        time.sleep(0.2)
    return path


def half_upload(server: LiveServer, shot_id: str, path: Path) -> str:
    """Announce ``path`` and send its first half, as a page closed mid-upload would have; the upload's id."""
    data = path.read_bytes()
    made = requests.post(f"{server.url}/v1/shots/{shot_id}/uploads", headers=server.headers, timeout=30,
                         json={"role": "source", "name": path.name, "size": len(data)}).json()
    sent = requests.patch(f"{server.url}/v1/uploads/{made['id']}", data=data[: len(data) // 2], timeout=30,
                          headers={**server.headers, "Upload-Offset": "0",
                                   "Content-Type": "application/offset+octet-stream"})
    assert sent.json()["offset"] == len(data) // 2, sent.text
    return made["id"]


def upload_memo(shot_id: str, role: str, path: Path) -> str:
    """The key under which the page remembers an upload of this file (upload.js: name, size, modification ms)."""
    stat = path.stat()
    return f"shotfit.upload.{shot_id}.{role}.{path.name}.{stat.st_size}.{stat.st_mtime_ns // 1_000_000}"


def drop_files(browser: webdriver.Chrome, zone: str, paths: list[Path]) -> None:
    """Drop PNG files on a drop zone, as files dragged from the desktop arrive (one DataTransfer)."""
    browser.execute_script("""
        const [zone, files] = arguments;
        const transfer = new DataTransfer();
        for (const [name, b64] of files) {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          transfer.items.add(new File([bytes], name, { type: "image/png" }));
        }
        const target = document.querySelector(zone);
        for (const type of ["dragenter", "dragover", "drop"])
          target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
        """, zone, [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in paths])


def test_a_studio_trains_renders_scrubs_and_downloads_a_shot_in_the_browser(
        server: LiveServer, browser: webdriver.Chrome, tmp_path: Path):
    plates, keyframes = write_graded_shot(tmp_path / "shot")  # plate.0001-0006.png; keyframes 1 and 4
    page = Page(browser, tmp_path / "screenshots")
    print(f"\nscreenshots: {page.shots}")

    page_headers = requests.get(server.url, timeout=30).headers
    assert "script-src 'self';" in page_headers["Content-Security-Policy"], page_headers
    assert "frame-ancestors 'none'" in page_headers["Content-Security-Policy"]
    assert page_headers["X-Content-Type-Options"] == "nosniff" and page_headers["X-Frame-Options"] == "DENY"
    browser.get(server.url)
    assert browser.title == "shotfit"
    page("#key").send_keys(server.key, Keys.ENTER)
    page.wait_text("#studio", "Studio: Acme VFX")
    assert browser.execute_script("return sessionStorage.getItem('shotfit.key')") == server.key
    page.screenshot("signed-in")

    page("#shot-name").send_keys("sh010_grade", Keys.ENTER)
    page.wait_text("#shot-title", "sh010_grade")
    [shot] = requests.get(f"{server.url}/v1/shots", headers=server.headers, timeout=30).json()
    half_sent = half_upload(server, shot["id"], plates / "plate.0001.png")
    browser.execute_script("localStorage.setItem(arguments[0], arguments[1])",  # as a tab that was closed mid-way
                           upload_memo(shot["id"], "source", plates / "plate.0001.png"), half_sent)
    page("input[type=file][data-role=source]").send_keys("\n".join(str(p) for p in sorted(plates.iterdir())))
    page.wait_text("#shot-counts", "6 plates")
    resumed = requests.get(f"{server.url}/v1/uploads/{half_sent}", headers=server.headers, timeout=30).json()
    assert resumed["complete"], resumed  # the page carried on with the upload begun before, from its offset
    page("input[type=file][data-role=keyframes]").send_keys("\n".join(str(p) for p in sorted(keyframes.iterdir())))
    page.wait_text("#shot-counts", "6 plates · 2 keyframes · 0 ground truth")
    truth = tmp_path / "truth"
    for frame in range(1, 7):
        write_image(truth / f"plate.{frame:04d}.png", grade(disc_plate(frame)), PNG8)
    drop_files(browser, ".drop[data-role=truth]", sorted(truth.iterdir()))
    page.wait_text("#shot-counts", "6 plates · 2 keyframes · 6 ground truth")
    rows = page.text("#uploads").splitlines()
    assert sum("uploaded" in row for row in rows) == 14, rows
    page.screenshot("uploaded")

    steps = page("#steps")
    steps.clear()
    steps.send_keys(str(STEPS))
    page("#settings").send_keys("\n".join(f"{name}={value}" for name, value in TINY_SETTINGS.items()))
    page("#train").click()
    page.wait_text("#job-title", "Training job")
    page.wait(lambda: curve_pixels(page) > 20, 240, "a loss curve on the chart")  # drawn live, from the events
    page.screenshot("training")
    status = page.wait(lambda: finished(page.text("#job-status")), 300, "the training job to end")
    assert "succeeded" in status and f"step {STEPS} / {STEPS}" in status, (status, page.text("#job-error"))
    assert "loss " in status and curve_pixels(page) > 20, status
    page.wait(lambda: page("#preview").get_attribute("naturalWidth") not in (None, "0"), 30, "the preview")
    page.screenshot("trained")

    page("#render").click()
    page.wait_text("#job-title", "Render job")
    status = page.wait(lambda: finished(page.text("#job-status")), 300, "the render job to end")
    assert "succeeded" in status and "6 / 6 frames" in status, (status, page.text("#job-error"))
    render_id = page.text("#job-title").split()[-1]
    frames = server.job_folder(render_id) / "frames"
    page.wait_text("#frame-label", "Frame 1 / 6 · plate.0001.png")
    page.wait(lambda: page("#after").get_attribute("naturalWidth") == "48", 30, "the rendered frame")
    page.screenshot("rendered")

    # the before/after split: all the way left shows the render, all the way right the plate
    page("#split").send_keys(Keys.HOME)
    after = page.image("#compare")
    page("#split").send_keys(Keys.END)
    before = page.image("#compare")
    rendered, plate = read_rgb(frames / "plate.0001.png"), read_rgb(plates / "plate.0001.png")
    assert shown_as(after, rendered) < 0.02 < shown_as(after, plate), (shown_as(after, rendered), shown_as(after, plate))
    assert shown_as(before, plate) < 0.02 < shown_as(before, rendered)
    page("#split").send_keys(Keys.HOME, Keys.ARROW_RIGHT * 25)  # a quarter plate, three quarters render
    assert page("#divider").value_of_css_property("left") == f"{round(0.25 * page('#compare').size['width'])}px"
    page.screenshot("split")

    # scrubbing to the last frame shows the last rendered frame
    page("#frame").send_keys(Keys.END)
    page.wait_text("#frame-label", "Frame 6 / 6 · plate.0006.png")
    page("#split").send_keys(Keys.HOME)
    last, first = read_rgb(frames / "plate.0006.png"), rendered
    page.wait(lambda: shown_as(page.image("#compare"), last) < 0.02 < shown_as(page.image("#compare"), first), 10,
              "frame 6 shown")
    page.screenshot("scrubbed")

    # downloads: the whole render as a zip, and one frame, byte for byte what the server rendered
    downloads = tmp_path / "downloads"
    page("#download-zip").click()
    with zipfile.ZipFile(wait_download(downloads, f"sh010_grade-{render_id}.zip")) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        assert names == [f"plate.{n:04d}.png" for n in range(1, 7)]
        assert "eval.json" in archive.namelist()  # scored against the ground truth dropped on the page
        for name in names:
            assert archive.read(name) == (frames / name).read_bytes(), name
    [button] = [b for b in browser.find_elements(By.CSS_SELECTOR, "#result-files button") if b.text == "plate.0003.png"]
    button.click()
    assert wait_download(downloads, "plate.0003.png").read_bytes() == (frames / "plate.0003.png").read_bytes()
    assert not page("#message").is_displayed(), page.text("#message")
    page.screenshot("downloaded")

    # a new visit (the page holds none of the plates it uploaded): the before side comes from the server
    browser.refresh()
    page.wait_text("#studio", "Studio: Acme VFX")
    [shot_button] = [b for b in browser.find_elements(By.CSS_SELECTOR, "#shots button") if b.text == "sh010_grade"]
    shot_button.click()
    page.wait(lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "#jobs button")
                       if b.text == f"render {render_id}"], 30, "the render job in the list")[0].click()
    page.wait_text("#frame-label", "Frame 1 / 6 · plate.0001.png")
    page("#split").send_keys(Keys.END)
    page.wait(lambda: shown_as(page.image("#compare"), plate) < 0.02 < shown_as(page.image("#compare"), rendered),
              30, "the plate on the before side")
    assert not page("#viewer-note").is_displayed(), page.text("#viewer-note")
    page.screenshot("revisited")

    assert csp_violations(browser) == []  # the whole flow ran under the policy, nothing refused
    # and the policy is in force: markup injected with an inline style (as an attack would carry) is refused
    browser.execute_script("""document.body.insertAdjacentHTML("beforeend", '<p style="color: red">x</p>')""")
    refused = page.wait(lambda: csp_violations(browser), 10, "the injected inline style to be refused")
    assert any("style-src" in line for line in refused), refused
