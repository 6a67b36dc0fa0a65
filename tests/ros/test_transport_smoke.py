"""Full-size camera images and LiDAR clouds cross processes over real DDS with the shipped profile."""

import json
import subprocess
import sys

import pytest

RATE_HZ, SECONDS = 20.0, 5.0
EXPECT = int(RATE_HZ * SECONDS)


def _probe(role: str, qos: str, env, **kw):
    args = [sys.executable, "-m", "fusion_monitor.ros.transport_probe", role, "--qos", qos]
    if role == "pub":
        args += ["--rate", str(RATE_HZ), "--seconds", str(SECONDS)]
    else:
        args += ["--expect", str(EXPECT), "--timeout", "60"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("qos", ["best_effort", "reliable"])
def test_every_image_and_cloud_arrives(qos, ros_env):
    sub = _probe("sub", qos, ros_env)
    pub = _probe("pub", qos, ros_env)
    try:
        sub_out, sub_err = sub.communicate(timeout=120)
        pub.communicate(timeout=60)
    finally:
        for p in (sub, pub):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert pub.returncode == 0, f"publisher failed ({pub.returncode})"
    report = json.loads(sub_out.strip().splitlines()[-1])
    assert report["bad"] == [], report["bad"]
    for topic in ("/probe/image", "/probe/cloud"):
        assert report[topic]["received"] == EXPECT, f"{qos} {topic}: {report[topic]} stderr: {sub_err[-500:]}"
        assert report[topic]["missing"] == []
    assert sub.returncode == 0
