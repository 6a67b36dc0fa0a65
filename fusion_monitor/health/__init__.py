"""fusion_monitor.health."""
