"""fusion_monitor.inference."""
