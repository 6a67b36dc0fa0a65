"""Fixtures of the inference tests: tiny fusion models exported once per session into packages."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fusion_monitor.inference.toy import TINY_FACTORY as FACTORY
from fusion_monitor.inference.toy import TINY_MODALITIES, tiny_example_inputs, tiny_fusion_net

EXTRA = {"classes": ["car", "pedestrian", "cyclist"], "bev_grid": {"range_m": 51.2, "cells": 16},
         "preprocessing": {"image_mean": [0.5, 0.5, 0.5]}, "decoding": {"heatmap_output": "heatmap"},
         "note": "test package"}


def lmd_missing_reason() -> str | None:
    """None when fusion_monitor.lmd provides decompose and export_onnx, else why not."""
    try:
        from fusion_monitor.lmd import decompose, export_onnx  # noqa: F401
    except ImportError as e:
        return f"fusion_monitor.lmd does not provide decompose/export_onnx yet ({e})"
    return None


def torch_reference(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The plain model's outputs on numpy inputs, by output name."""
    import torch

    from fusion_monitor.inference.naming import flatten_named

    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return {n: t.numpy() for n, t in flatten_named(out)}


@pytest.fixture(scope="session")
def extra_metadata() -> dict:
    return EXTRA


@pytest.fixture(scope="session")
def reference():
    """torch_reference: the plain model's outputs on numpy inputs."""
    return torch_reference


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_fusion_net(seed=0)


@pytest.fixture(scope="session")
def tiny_inputs():
    return tiny_example_inputs(seed=0)


@pytest.fixture(scope="session")
def plain_package(tmp_path_factory, tiny_model, tiny_inputs):
    """A plain package of the tiny network, with factory + checkpoint (for the PyTorch backend)."""
    from fusion_monitor.inference import write_package

    out = tmp_path_factory.mktemp("packages") / "tiny_plain"
    return write_package(out, tiny_model, tiny_inputs, TINY_MODALITIES, decomposed=False, extra_metadata=EXTRA,
                         factory=FACTORY)


@pytest.fixture(scope="session")
def decomposed_package(tmp_path_factory, tiny_model, tiny_inputs):
    """A decomposed (LMD) package of the tiny network, or a visible skip until fusion_monitor.lmd lands."""
    reason = lmd_missing_reason()
    if reason:
        pytest.skip(reason)
    from fusion_monitor.inference import write_package

    out = tmp_path_factory.mktemp("packages") / "tiny_lmd"
    return write_package(out, tiny_model, tiny_inputs, TINY_MODALITIES, decomposed=True, extra_metadata=EXTRA,
                         factory=FACTORY)


@pytest.fixture
def package_copy(tmp_path, plain_package):
    """A private, mutable copy of the plain package directory."""
    dst = tmp_path / "pkg"
    shutil.copytree(plain_package.path, dst)
    return dst
