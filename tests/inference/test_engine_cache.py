"""Engine cache keys and lookups (pure file logic; building engines is in the gpu tests)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fusion_monitor.inference import EngineCache, EngineCacheError, EngineKey

KEY = EngineKey(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", gpu_name="NVIDIA GeForce RTX 4090",
                compute_capability="8.9", precision="fp16")


def test_digest_is_stable_and_depends_on_every_field():
    assert KEY.digest == EngineKey(**{f: getattr(KEY, f) for f in KEY.__dataclass_fields__}).digest
    assert len(KEY.digest) == 24
    variants = [replace(KEY, onnx_sha256="cd" * 32), replace(KEY, tensorrt_version="10.4.0"),
                replace(KEY, gpu_name="Orin"), replace(KEY, compute_capability="8.7"), replace(KEY, precision="fp32")]
    digests = {KEY.digest, *(v.digest for v in variants)}
    assert len(digests) == 1 + len(variants)


def test_invalid_keys_are_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        replace(KEY, precision="bf16")
    with pytest.raises(ValueError, match="gpu_name must be a non-empty string"):
        replace(KEY, gpu_name="")


def test_store_then_lookup(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    assert cache.lookup(KEY) is None
    path = cache.store(KEY, b"engine-bytes", {"workspace_mib": 512})
    assert cache.lookup(KEY) == path and path.read_bytes() == b"engine-bytes"
    side = json.loads(cache.sidecar_path(KEY).read_text())
    assert side["key"]["gpu_name"] == KEY.gpu_name and side["build"] == {"workspace_mib": 512}
    assert not list((tmp_path / "engines").glob("*.tmp*"))


def test_miss_explains_what_is_cached(tmp_path):
    cache = EngineCache(tmp_path)
    assert "no TensorRT engine cached" in cache.explain_miss(KEY)
    cache.store(KEY, b"x")
    other = replace(KEY, tensorrt_version="10.5.1", gpu_name="Orin", compute_capability="8.7")
    assert cache.lookup(other) is None
    why = cache.explain_miss(other)
    assert "TensorRT 10.3.0 (this is 10.5.1)" in why
    assert "GPU NVIDIA GeForce RTX 4090 (this is Orin)" in why
    assert "compute capability 8.9 (this is 8.7)" in why
    assert "precision" not in why


def test_tampered_sidecar_is_refused(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"x")
    side = cache.sidecar_path(KEY)
    data = json.loads(side.read_text())
    data["key"]["tensorrt_version"] = "9.9"
    side.write_text(json.dumps(data))
    with pytest.raises(EngineCacheError, match="engine was built for TensorRT 9.9 \\(this is 10.3.0\\)") as e:
        cache.lookup(KEY)
    assert e.value.path == cache.engine_path(KEY)
    side.unlink()
    with pytest.raises(EngineCacheError, match="no readable key file"):
        cache.lookup(KEY)
