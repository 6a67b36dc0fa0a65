"""report.html: a self-contained, offline review page for one replayed drive.

Everything is inline (SVG plots, PNG snapshots as data URIs, CSS); the page loads no script and
makes no network request. Input is the replay's per-frame records (the lines of frames.jsonl),
the alerts derived from them and BEV snapshots taken at alerts.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STREAM_COLOURS = {"camera": "#1f77b4", "lidar": "#2ca02c", "radar": "#d62728", "bias": "#7f7f7f"}
LEVEL_COLOURS = {0: "#4caf50", 1: "#ffb300", 2: "#e53935", 3: "#9e9e9e"}
LEVEL_NAMES = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


@dataclass
class Alert:
    """A status that entered WARN or ERROR: when, which status, and the message saying where."""

    t_s: float
    stamp_ns: int
    name: str
    level: int
    message: str
    cleared_t_s: float | None = None


@dataclass
class Snapshot:
    """Per-stream BEV contribution maps at one moment (rows = +x forward, cols = +y left)."""

    t_s: float
    title: str
    maps: dict[str, np.ndarray]
    detections: list[dict] = field(default_factory=list)


def alerts_from_frames(frames: list[dict]) -> list[Alert]:
    """Alerts are transitions of a status into WARN/ERROR (or to a higher level); recovery closes them."""
    open_alerts: dict[str, Alert] = {}
    alerts: list[Alert] = []
    for fr in frames:
        for st in fr.get("statuses", []):
            name, level = st["name"], int(st["level"])
            cur = open_alerts.get(name)
            if level in (1, 2) and (cur is None or level > cur.level):
                a = Alert(fr["t_s"], fr["stamp_ns"], name, level, st.get("message", ""))
                alerts.append(a)
                open_alerts[name] = a
            elif level == 0 and cur is not None:
                cur.cleared_t_s = fr["t_s"]
                del open_alerts[name]
    return alerts


def _svg_lines(series: dict[str, list[tuple[float, float]]], t_max: float, y_min: float, y_max: float,
               title: str, width: int = 900, height: int = 180) -> str:
    pad_l, pad_r, pad_t, pad_b = 44, 90, 22, 24
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    t_max = max(t_max, 1e-6)
    span = max(y_max - y_min, 1e-6)

    def xy(t: float, v: float) -> str:
        return f"{pad_l + w * t / t_max:.1f},{pad_t + h * (1 - (v - y_min) / span):.1f}"

    parts = [f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{pad_l}" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>',
             f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>']
    for frac in (0.0, 0.5, 1.0):
        v = y_min + span * frac
        y = pad_t + h * (1 - frac)
        parts.append(f'<line x1="{pad_l}" x2="{pad_l + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        parts.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{v:.0%}</text>')
    for k in range(6):
        t = t_max * k / 5
        parts.append(f'<text x="{pad_l + w * k / 5:.1f}" y="{height - 6}" font-size="10" '
                     f'text-anchor="middle">{t:.1f}s</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = STREAM_COLOURS.get(name, "#000")
        if pts:
            path = " ".join(xy(t, v) for t, v in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        parts.append(f'<text x="{pad_l + w + 8}" y="{pad_t + 12 + 14 * i}" font-size="11" fill="{colour}">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_status_timeline(frames: list[dict], t_max: float, width: int = 900) -> str:
    rows: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for fr in frames:
        for st in fr.get("statuses", []):
            rows[st["name"].split(": ", 1)[-1]].append((fr["t_s"], int(st["level"])))
    names = sorted(rows)
    pad_l, row_h = 230, 14
    height = 30 + row_h * len(names)
    w = width - pad_l - 10
    t_max = max(t_max, 1e-6)
    parts = [f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="sensor status timeline">']
    for r, name in enumerate(names):
        y = 10 + r * row_h
        parts.append(f'<text x="{pad_l - 6}" y="{y + 10}" font-size="10" text-anchor="end">{html.escape(name)}</text>')
        pts = rows[name]
        for k, (t, level) in enumerate(pts):
            t_next = pts[k + 1][0] if k + 1 < len(pts) else t_max
            x0, x1 = pad_l + w * t / t_max, pad_l + w * t_next / t_max
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1.0):.1f}" height="{row_h - 2}" '
                         f'fill="{LEVEL_COLOURS.get(level, "#000")}"><title>{html.escape(name)} '
                         f'{LEVEL_NAMES.get(level, level)} at {t:.2f}s</title></rect>')
    for k in range(6):
        parts.append(f'<text x="{pad_l + w * k / 5:.1f}" y="{height - 4}" font-size="10" '
                     f'text-anchor="middle">{t_max * k / 5:.1f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _png_data_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=6)  # optimize=True: 10x the time, ~5% smaller
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_bev_map(values: np.ndarray, scale: float | None = None, upsample: int = 2) -> np.ndarray:
    """Diverging colour map of a signed BEV map: red positive, blue negative, white zero; forward is up."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"BEV map must be 2-D, got shape {v.shape}")
    v = np.nan_to_num(v)
    s = scale if scale is not None else float(np.percentile(np.abs(v), 99.5)) or 1.0
    x = np.clip(v / s, -1, 1)
    rgb = np.empty(v.shape + (3,), np.float32)
    pos, neg = np.clip(x, 0, 1), np.clip(-x, 0, 1)
    rgb[..., 0] = 1 - neg
    rgb[..., 1] = 1 - np.maximum(pos, neg)
    rgb[..., 2] = 1 - pos
    img = (rgb * 255).astype(np.uint8)[::-1, ::-1]  # rows = +x (forward) -> up; cols = +y (left) -> left
    return np.repeat(np.repeat(img, upsample, 0), upsample, 1)


def _share_series(frames: list[dict]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Per class (and 'all'), per stream: mean absolute-normalised share of the detections of each frame."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for fr in frames:
        by_class: dict[str, list[dict]] = defaultdict(list)
        for d in fr.get("detections", []):
            by_class[d["label"]].append(d)
            by_class["all classes"].append(d)
        for label, dets in by_class.items():
            streams = sorted({s for d in dets for s in d["shares"]})
            for s in streams:
                out[label][s].append((fr["t_s"], float(np.mean([d["shares"].get(s, 0.0) for d in dets]))))
    return out


def summarise(frames: list[dict]) -> dict:
    """Frames, detections, mean share per stream, detections per class."""
    dets = [d for fr in frames for d in fr.get("detections", [])]
    streams = sorted({s for d in dets for s in d["shares"]})
    per_class: dict[str, int] = defaultdict(int)
    for d in dets:
        per_class[d["label"]] += 1
    return {
        "frames": len(frames),
        "detections": len(dets),
        "duration_s": frames[-1]["t_s"] - frames[0]["t_s"] if frames else 0.0,
        "mean_shares": {s: float(np.mean([d["shares"].get(s, 0.0) for d in dets])) for s in streams},
        "per_class": dict(sorted(per_class.items())),
    }


def write_report(path: str | Path, frames: list[dict], *, title: str, snapshots: list[Snapshot] = (),
                 problems: list[str] = (), notes: dict[str, str] | None = None) -> Path:
    """Write the review page; returns its path.

    Parameters
    ----------
    frames : list of dict
        Records as written to frames.jsonl (t_s, stamp_ns, detections with shares, statuses).
    snapshots : list of Snapshot
        BEV maps to show (taken at alerts).
    problems : list of str
        Input problems to show first (e.g. "bag truncated: broke at 12.4 s").
    """
    path = Path(path)
    alerts = alerts_from_frames(frames)
    summ = summarise(frames)
    t_max = max((fr["t_s"] for fr in frames), default=0.0)
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    if problems:
        body.append('<div class="problems"><h2>Input problems</h2><ul>' +
                    "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul></div>")
    rows = [("frames", summ["frames"]), ("duration", f"{summ['duration_s']:.1f} s"),
            ("detections", summ["detections"]), ("alerts", len(alerts))]
    rows += [(f"mean share {s}", f"{v:.0%}") for s, v in summ["mean_shares"].items()]
    rows += [(f"detections: {c}", n) for c, n in summ["per_class"].items()]
    rows += list((notes or {}).items())
    body.append('<h2>Summary</h2><table class="summary">' +
                "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in rows) + "</table>")
    body.append("<h2>Per-modality contribution over time</h2>"
                "<p>Mean signed share of each stream in the detections of each frame "
                "(h<sub>s</sub> / &Sigma;|h|, Layer-Wise Modality Decomposition at the heat-map logit).</p>")
    series = _share_series(frames)
    if not series:
        body.append("<p>No detections.</p>")
    for label in sorted(series, key=lambda k: (k != "all classes", k)):
        ys = [v for pts in series[label].values() for _, v in pts]
        body.append(_svg_lines(series[label], t_max, min(0.0, min(ys)), max(1.0, max(ys)), label))
    body.append("<h2>Sensor status timeline</h2>" + _svg_status_timeline(frames, t_max) +
                '<p class="legend">' + " ".join(f'<span style="background:{c}">{LEVEL_NAMES[k]}</span>'
                                               for k, c in LEVEL_COLOURS.items()) + "</p>")
    body.append("<h2>Alerts</h2>")
    if alerts:
        body.append('<table class="alerts"><tr><th>time</th><th>level</th><th>status</th><th>where / why</th>'
                    "<th>cleared</th></tr>" + "".join(
                        f'<tr><td>{a.t_s:.2f} s</td><td class="l{a.level}">{LEVEL_NAMES[a.level]}</td>'
                        f"<td>{esc(a.name)}</td><td>{esc(a.message)}</td>"
                        f"<td>{'' if a.cleared_t_s is None else f'{a.cleared_t_s:.2f} s'}</td></tr>"
                        for a in alerts) + "</table>")
    else:
        body.append("<p>No alerts.</p>")
    if snapshots:
        body.append("<h2>BEV contribution maps at alerts</h2><p>Per stream, the heat-map logit contribution "
                    "of the strongest class at each cell (red: for, blue: against); forward is up.</p>")
        for snap in snapshots:
            scale = max((float(np.percentile(np.abs(m), 99.5)) for m in snap.maps.values()), default=1.0) or 1.0
            imgs = "".join(f'<figure><img alt="{esc(s)} BEV map" src="{_png_data_uri(render_bev_map(m, scale))}">'
                           f"<figcaption>{esc(s)}</figcaption></figure>" for s, m in snap.maps.items())
            body.append(f'<div class="snap"><h3>{snap.t_s:.2f} s: {esc(snap.title)}</h3>{imgs}</div>')
    css = ("body{font-family:sans-serif;margin:20px;max-width:1000px}table{border-collapse:collapse}"
           "td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px;text-align:left}"
           ".l1{background:#ffe082}.l2{background:#ef9a9a}.problems{background:#fff3e0;padding:4px 12px}"
           "figure{display:inline-block;margin:4px}figcaption{text-align:center;font-size:12px}"
           ".legend span{padding:1px 6px;margin-right:4px;font-size:12px}svg.plot{display:block;margin:6px 0}")
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
           f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
           f"style-src 'unsafe-inline'\"><style>{css}</style></head><body>{''.join(body)}</body></html>")
    path.write_text(doc, encoding="utf-8")
    return path
