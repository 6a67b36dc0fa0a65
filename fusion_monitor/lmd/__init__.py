"""fusion_monitor.lmd."""
