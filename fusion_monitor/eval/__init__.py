"""fusion_monitor.eval: alert-evaluation scenarios (faults + expected alerts), scoring and summary tables."""

from fusion_monitor.eval.scenario import Expectation, Scenario, ScenarioError, load_scenario, load_scenarios
from fusion_monitor.eval.score import ATTRIBUTION_CHECKS, ScenarioScore, score_alerts, summary_rows, summary_table

__all__ = ["ATTRIBUTION_CHECKS", "Expectation", "Scenario", "ScenarioError", "ScenarioScore", "load_scenario",
           "load_scenarios", "score_alerts", "summary_rows", "summary_table"]
