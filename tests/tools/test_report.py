"""report.html: self-contained, offline, loads cleanly in headless Chromium with visible plots."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from fusion_monitor.tools.report import Snapshot, alerts_from_frames, render_bev_map, summarise, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _frames(n=60):
    frames = []
    rng = np.random.default_rng(0)
    for i in range(n):
        t = i * 0.1
        cam_level = 2 if 2.0 <= t < 4.0 else 0
        cam = 0.05 if cam_level else 0.45
        dets = [{"label": lab, "score": 0.8, "shares": {"camera": cam + 0.01 * rng.standard_normal(),
                                                        "lidar": 0.4, "radar": 0.1, "bias": 0.05}}
                for lab in ("car", "pedestrian")]
        statuses = [
            {"name": "fusion_monitor: CAM_FRONT/staleness", "level": cam_level,
             "message": "no image for 0.6 s" if cam_level else "ok"},
            {"name": "fusion_monitor: LIDAR_TOP/blockage", "level": 0, "message": "ok"},
        ]
        frames.append({"t_s": t, "stamp_ns": 1_000_000_000 + int(t * 1e9), "detections": dets, "statuses": statuses})
    return frames


def test_alerts_have_time_where_and_recovery():
    alerts = alerts_from_frames(_frames())
    assert len(alerts) == 1
    a = alerts[0]
    assert a.name.endswith("CAM_FRONT/staleness") and a.level == 2
    assert a.t_s == pytest.approx(2.0) and a.cleared_t_s == pytest.approx(4.0)
    assert "0.6 s" in a.message


def test_summary_counts_and_mean_shares():
    s = summarise(_frames())
    assert s["frames"] == 60 and s["detections"] == 120
    assert s["per_class"] == {"car": 60, "pedestrian": 60}
    assert s["mean_shares"]["lidar"] == pytest.approx(0.4)
    assert 0.3 < s["mean_shares"]["camera"] < 0.4  # camera share collapsed for 2 of 6 seconds


def test_bev_map_colours_sign():
    m = np.zeros((4, 4))
    m[0, 0], m[3, 3] = 1.0, -1.0
    img = render_bev_map(m, scale=1.0, upsample=1)
    # row 0 (x nearest the back) is drawn at the bottom, column 0 (rightmost y) at the right
    assert tuple(img[3, 3]) == (255, 0, 0)  # positive -> red
    assert tuple(img[0, 0]) == (0, 0, 255)  # negative -> blue
    assert tuple(img[1, 1]) == (255, 255, 255)


def test_report_is_self_contained(tmp_path):
    path = write_report(tmp_path / "report.html", _frames(), title="drive", problems=["bag truncated at 5.9 s"],
                        snapshots=[Snapshot(2.0, "CAM_FRONT stale", {"camera": np.ones((8, 8)),
                                                                     "lidar": -np.ones((8, 8))})])
    text = path.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "<script" not in text
    assert "bag truncated at 5.9 s" in text and "CAM_FRONT/staleness" in text
    assert text.count("data:image/png;base64,") == 2


def _chromium(page, tmp_path):
    """Load a page headless; return (screenshot array, console lines, remote URLs the page requested)."""
    shot, netlog = tmp_path / "shot.png", tmp_path / "net.json"
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         f"--log-net-log={netlog}", "--window-size=1000,1400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    remote = set()
    for event in json.loads(netlog.read_text()).get("events", []):
        params = event.get("params", {})
        # requests made on behalf of the page carry its (file://) isolation key; the browser's own
        # background requests (time, updates) carry none or their own site
        if str(params.get("network_isolation_key", "")).startswith("file://"):
            if str(params.get("url", "")).startswith(("http:", "https:", "ws:", "wss:")):
                remote.add(params["url"])
    return np.asarray(Image.open(shot).convert("RGB")), console, sorted(remote)


chromium_only = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.mark.slow
@chromium_only
def test_network_check_catches_a_page_that_fetches(tmp_path):
    page = tmp_path / "fetching.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png">x</body></html>')
    _, _, remote = _chromium(page, tmp_path)
    assert remote == ["http://127.0.0.1:9/x.png"]


@pytest.mark.slow
@chromium_only
def test_report_renders_in_headless_chromium(tmp_path):
    path = write_report(tmp_path / "report.html", _frames(), title="drive",
                        snapshots=[Snapshot(2.0, "CAM_FRONT stale", {"camera": np.eye(16), "lidar": -np.eye(16)})])
    img, console, remote = _chromium(path, tmp_path)
    assert console == [], console
    assert remote == [], remote
    colours = {tuple(c) for c in img.reshape(-1, 3)[::7]}
    assert len(colours) > 20, "screenshot is (nearly) blank"
    # plots drawn: the status timeline's OK green and ERROR red are on screen
    assert (76, 175, 80) in colours and (229, 57, 53) in colours, "status timeline not drawn"
