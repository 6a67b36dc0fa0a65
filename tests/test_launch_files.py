"""The launch files and the RViz config reference only things that exist.

launch / launch_ros are not importable in a pip-only environment, so the XML is parsed with
ElementTree and the Python launch file with ast; names are checked against setup.py's console
scripts, the parameter file, the node's output topics and the rig profile's input topics.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from fusion_monitor.ros import params as P
from fusion_monitor.ros import topics as T
from fusion_monitor.sensors.rig import load_rig

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
ARGS = {"params_file", "model", "use_sim_time", "rviz"}
OTHER_PACKAGES = {"rviz2": {"rviz2"}}  # package -> executables we may start from other packages
BUILTIN_PARAMS = {"use_sim_time"}


def _console_scripts() -> set[str]:
    text = (REPO / "setup.py").read_text()
    return set(re.findall(r'"([\w\-]+)\s*=\s*[\w.]+:\w+"', text))


def _yaml_params() -> set[str]:
    data = yaml.safe_load((REPO / "config" / "fusion_monitor.param.yaml").read_text())
    return set(P.flatten(data["/**"]["ros__parameters"]))


def _rig_topics() -> set[str]:
    rig = load_rig()
    return {s.topic for s in rig.sensors.values()} | {s.camera_info_topic for s in rig.sensors.values()
                                                        if s.camera_info_topic}


def _output_topics() -> set[str]:
    return {T.resolve(t, P.NODE_NAME) for t in T.OUTPUT_TOPICS}


def _share_path(expr: str) -> Path:
    """'$(find-pkg-share fusion_monitor)/config/x' -> repo path (the package share mirrors the repo)."""
    rel = expr.split(")", 1)[1].lstrip("/")
    return REPO / rel


# ---- XML ------------------------------------------------------------------------------------------
def _xml():
    return ET.parse(LAUNCH / "fusion_monitor.launch.xml").getroot()


def test_xml_arguments_are_described():
    args = {a.get("name"): a for a in _xml().iter("arg")}
    assert set(args) == ARGS
    for name, a in args.items():
        assert len(a.get("description", "")) > 15, f"arg {name} has no description"
    assert _share_path(args["params_file"].get("default")).is_file()


def test_xml_nodes_executables_params_and_remaps_exist():
    root = _xml()
    nodes = list(root.iter("node"))
    assert nodes
    for n in nodes:
        pkg, exe = n.get("pkg"), n.get("exec")
        if pkg == "fusion_monitor":
            assert exe in _console_scripts(), f"{exe} is not a console script of setup.py"
            assert n.get("name") == P.NODE_NAME
            assert any(p.get("from") == "$(var params_file)" for p in n.iter("param"))
        else:
            assert exe in OTHER_PACKAGES.get(pkg, set()), f"unexpected node {pkg}/{exe}"
            rviz = re.search(r"\$\(find-pkg-share fusion_monitor\)(/\S+\.rviz)", n.get("args", ""))
            assert rviz and (REPO / rviz.group(1).lstrip("/")).is_file()
        for p in n.iter("param"):
            if p.get("name") is not None:
                assert p.get("name") in _yaml_params() | BUILTIN_PARAMS, p.get("name")
        for r in n.iter("remap"):
            assert r.get("to") in _rig_topics(), f"remap target {r.get('to')} is not an input topic"
        for used in re.findall(r"\$\(var (\w+)\)", ET.tostring(n, encoding="unicode")):
            assert used in ARGS


# ---- Python ---------------------------------------------------------------------------------------
def _py_calls(name: str) -> list[ast.Call]:
    tree = ast.parse((LAUNCH / "fusion_monitor.launch.py").read_text())
    return [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == name]


def _kw(call: ast.Call, key: str):
    return next((k.value for k in call.keywords if k.arg == key), None)


def test_py_arguments_are_described_and_match_the_xml():
    declared = {}
    for c in _py_calls("DeclareLaunchArgument"):
        desc = _kw(c, "description")
        assert isinstance(desc, ast.Constant) and len(desc.value) > 15
        declared[c.args[0].value] = desc.value
    assert set(declared) == ARGS
    xml_desc = {a.get("name"): a.get("description") for a in _xml().iter("arg")}
    assert declared == xml_desc, "the two launch files describe their arguments differently"
    used = {c.args[0].value for c in _py_calls("LaunchConfiguration")}
    assert used <= ARGS


def test_py_nodes_executables_params_and_remaps_exist():
    nodes = _py_calls("Node")
    assert nodes
    for n in nodes:
        pkg, exe = _kw(n, "package").value, _kw(n, "executable").value
        if pkg == "fusion_monitor":
            assert exe in _console_scripts()
            assert _kw(n, "name").value == P.NODE_NAME
        else:
            assert exe in OTHER_PACKAGES.get(pkg, set())
        params = _kw(n, "parameters")
        for d in ast.walk(params) if params is not None else []:
            if isinstance(d, ast.Dict):
                for k in d.keys:
                    assert k.value in _yaml_params() | BUILTIN_PARAMS, k.value
        remaps = _kw(n, "remappings")
        for t in remaps.elts if remaps is not None else []:
            assert t.elts[1].value in _rig_topics()
    tree_text = (LAUNCH / "fusion_monitor.launch.py").read_text()
    for path in re.findall(r'PathJoinSubstitution\(\[share, ((?:"[^"]+", )*"[^"]+")\]\)', tree_text):
        parts = [p.strip().strip('"') for p in path.split(",")]
        assert (REPO.joinpath(*parts)).is_file(), parts


# ---- RViz ------------------------------------------------------------------------------------------
def _rviz_topics(node, out):
    if isinstance(node, dict):
        topic = node.get("Topic")
        if isinstance(topic, dict) and "Value" in topic:
            out.append((node.get("Class"), topic["Value"], topic.get("Transport Hint", "raw")))
        for v in node.values():
            _rviz_topics(v, out)
    elif isinstance(node, list):
        for v in node:
            _rviz_topics(v, out)
    return out


def test_rviz_config_topics_exist():
    cfg = yaml.safe_load((LAUNCH / "fusion_monitor.rviz").read_text())
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == load_rig().base_frame
    remaps = {r.get("from"): r.get("to") for r in _xml().iter("remap")}
    topics = _rviz_topics(cfg, [])
    classes = {c for c, _, _ in topics}
    assert {"rviz_default_plugins/PointCloud2", "rviz_default_plugins/MarkerArray", "rviz_default_plugins/Map",
            "rviz_default_plugins/Image"} <= classes
    known = _output_topics() | _rig_topics()
    for cls, topic, transport in topics:
        wire = topic if transport == "raw" else f"{topic}/{transport}"
        assert remaps.get(wire, wire) in known, f"{cls} shows {wire}, which nothing publishes"
    maps = {t for c, t, _ in topics if c == "rviz_default_plugins/Map"}
    assert maps == {T.resolve(T.ATTRIBUTION[m], P.NODE_NAME) for m in ("camera", "radar", "lidar")}
