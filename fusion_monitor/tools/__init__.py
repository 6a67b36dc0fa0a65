"""fusion_monitor.tools."""
