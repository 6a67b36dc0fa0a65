"""fusion_monitor: a ROS 2 runtime monitor for camera-radar-LiDAR fusion perception."""

__version__ = "0.1.0"
