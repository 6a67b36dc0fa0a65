"""fusion_monitor.model."""
