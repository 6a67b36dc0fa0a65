"""Write requirements.lock from the packages installed in the running venv (dist-info names only).

`pip freeze` is not installable with the ROS 2 wheels: each also registers an egg-info name that is
not on PyPI. Run after `pip install -r requirements.in` in a clean venv:

    .venv/bin/python scripts/lock_requirements.py
"""

import importlib.metadata as md
from pathlib import Path

HEADER = """# Pinned dependencies of fusion_monitor (hand-kept lock: pip freeze is not installable with the
# ROS 2 wheels, which also register egg-info names that are not on PyPI). Regenerate with
# scripts/lock_requirements.py after changing requirements.in.
"""


def main() -> None:
    rows = {}
    for dist in md.distributions():
        if not str(getattr(dist, "_path", "")).endswith(".dist-info"):
            continue
        name = dist.metadata["Name"]
        if name.lower().replace("_", "-") in ("fusion-monitor", "pip"):
            continue
        rows[name.lower()] = f"{name}=={dist.version}"
    out = Path(__file__).resolve().parents[1] / "requirements.lock"
    out.write_text(HEADER + "".join(rows[k] + "\n" for k in sorted(rows)))
    print(f"wrote {out} ({len(rows)} packages)")


if __name__ == "__main__":
    main()
