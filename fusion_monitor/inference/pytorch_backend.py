"""PyTorch backend: the package's model rebuilt from its factory and checkpoint (CPU or CUDA)."""

from __future__ import annotations

import numpy as np

from fusion_monitor.inference.backend import Backend
from fusion_monitor.inference.errors import BackendUnavailableError, ExportError, PackageError
from fusion_monitor.inference.factory import build_model
from fusion_monitor.inference.naming import flatten_named, stream_output_name
from fusion_monitor.inference.package import ModelPackage


class PyTorchBackend(Backend):
    """Run the package's model in PyTorch (eager), decomposed by LMD when the package is.

    Parameters
    ----------
    package : ModelPackage
        The loaded package. Unless ``model`` is given, its metadata must name a factory
        (``source.factory``, "module:callable") and a checkpoint inside the package.
    model : torch.nn.Module, optional
        Use this model instead of building one from the package's factory.
    device : {"cpu", "cuda"} or str
        Torch device (``"cuda:1"`` works too).
    threads : int or None
        ``torch.set_num_threads`` for CPU inference (None: leave torch's setting).
    compiled : bool
        Decomposed packages: run LMD's single-pass GraphModule (``compile_single_pass``)
        instead of the interpreted decomposition (same numbers, less Python overhead).
    copy_outputs : bool
        See :class:`Backend`.
    """

    kind = "pytorch"

    def __init__(self, package: ModelPackage, *, model=None, device: str = "cpu", threads: int | None = None,
                 compiled: bool = True, copy_outputs: bool = True):
        super().__init__(package, copy_outputs=copy_outputs)
        import torch

        md = self.metadata
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("pytorch on CUDA requested but torch.cuda.is_available() is False")
        if threads is not None:
            torch.set_num_threads(int(threads))
        if model is None:
            factory = md.source.get("factory")
            if not factory:
                raise PackageError(package.metadata_path, "the PyTorch backend needs source.factory "
                                   "('module:callable') and source.checkpoint in the metadata, or model=")
            try:
                model = build_model(factory, package.checkpoint_path, md.source.get("factory_kwargs") or {}, "cpu")
            except ExportError as e:
                raise PackageError(package.metadata_path, f"cannot rebuild the PyTorch model: {e}") from e
        self.model = model.eval().to(self.device)
        self._unused = {}
        for item in md.extra.get("unused_inputs", ()):
            self._unused[item["name"]] = torch.zeros(item["shape"], dtype=getattr(torch, item["dtype"]))
        self.module = self.model
        if md.decomposed:
            try:
                from fusion_monitor.lmd import decompose
            except ImportError as e:
                raise BackendUnavailableError(f"decomposed package {package.path} needs fusion_monitor.lmd: {e}") from e
            example = {i.name: _example_tensor(i.shape, i.dtype, k).to(self.device) for k, i in enumerate(md.inputs)}
            example.update({n: t.to(self.device) for n, t in self._unused.items()})
            opts = {k: v for k, v in md.lmd.items() if k != "modalities"}
            dm = decompose(self.model, example, md.lmd.get("modalities") or md.modalities, **opts)
            self.module = dm
            if compiled:
                try:
                    from fusion_monitor.lmd.export import compile_single_pass
                except ImportError:
                    compile_single_pass = None
                if compile_single_pass is not None:
                    self.module = compile_single_pass(dm, example)  # one generated graph, no interpreter
            if tuple(self.module.stream_names) != md.stream_names:
                raise PackageError(package.metadata_path, f"LMD stream names {list(self.module.stream_names)} differ "
                                   f"from the metadata's {list(md.stream_names)}")
        self.name = f"pytorch-{self.device.type}"
        self._torch = torch

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        feeds = {n: torch.from_numpy(a).to(self.device, non_blocking=True) for n, a in inputs.items()}
        for n, t in self._unused.items():
            feeds.setdefault(n, t.to(self.device))
        with torch.inference_mode():
            out = self.module(**feeds)
            if self.metadata.decomposed:
                named = flatten_named(out.output) + [(stream_output_name(n), t) for n, t in flatten_named(out.streams)]
            else:
                named = flatten_named(out)
        got = [n for n, _ in named]
        if got != list(self.output_names):
            raise PackageError(self.package.metadata_path, f"the PyTorch model returns outputs {got}, the metadata "
                               f"lists {list(self.output_names)}")
        return {n: t.detach().to("cpu").numpy() for n, t in named}


def _example_tensor(shape, dtype: str, seed: int):
    """Seeded standard-normal floats (zeros for integer / bool inputs) to trace the decomposition with."""
    import torch

    if dtype.startswith("float"):
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(shape, generator=gen).to(getattr(torch, dtype))
    return torch.zeros(shape, dtype=getattr(torch, dtype))
