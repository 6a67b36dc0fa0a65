"""ament_python / pip packaging for fusion_monitor (the repo root is the ROS package)."""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "fusion_monitor"
version = re.search(r'__version__ = "([^"]+)"', Path("fusion_monitor/__init__.py").read_text()).group(1)

setup(
    name=package_name,
    version=version,
    packages=find_packages(include=["fusion_monitor", "fusion_monitor.*"]),
    package_data={"fusion_monitor": ["data/*/*", "data/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.json") + glob("config/*.xml")),
        *[("share/" + package_name + "/" + d, [f for f in glob(d + "/*") if Path(f).is_file()])
          for d in sorted({str(Path(f).parent) for f in glob("models/**/*", recursive=True)} | {"models"})
          if any(Path(f).is_file() for f in glob(d + "/*"))],
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="fusion_monitor developers",
    maintainer_email="fusion-monitor@example.com",
    description="ROS 2 runtime monitor for camera-radar-LiDAR fusion with Layer-Wise Modality Decomposition",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "fusion-monitor = fusion_monitor.tools.cli:main",
            "fusion_monitor_node = fusion_monitor.ros.node_main:main",
        ],
    },
)
