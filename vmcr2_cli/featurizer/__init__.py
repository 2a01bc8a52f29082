"""A trained run's featurizer outside training: embed new images, predict their class, export the network.

>>> from vmcr2_cli import load_featurizer
>>> f = load_featurizer("runs/latest")          # checkpoint="last", device=None (the run's), precision=None
>>> Z = f.embed(images)                          # uint8 (N, H, W) / (N, C, H, W) arrays or PIL images → (N, d)
>>> classes, residuals = f.predict(images)       # eq. 8 on class subspaces saved in the run

Modules: ``featurizer`` (loading a run's f_θ with its preprocessing; the one forward path of
``vmcr2 embed``, ``vmcr2 export`` and this API), ``images`` (image files, folders and in-memory
images to uint8 batches), ``subspaces`` (eq. 8's class subspaces kept in the run) and
``exporters`` (ONNX, TorchScript, safetensors).
"""

from vmcr2_cli.featurizer.featurizer import Featurizer, Prediction, load_featurizer

__all__ = ["Featurizer", "Prediction", "load_featurizer"]
