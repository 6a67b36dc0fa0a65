"""fusion_monitor.sim."""
