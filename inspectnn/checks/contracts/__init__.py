"""Shape, dtype and device contracts of torch's common layers.

A contract reads a module's configuration and the arguments of one call, before
the call runs, and returns a :class:`Violation` when the call cannot work:
``Linear(1024, 10)`` given ``[1, 4096]``, a 3-channel image into
``Conv2d(1, 16, 3)``, float64 input into float32 weights, a CPU tensor into a
layer on the GPU. The tracer records violations; the API turns the one of the
failing layer into a ``ShapeMismatchError`` / ``DtypeMismatchError`` /
``DeviceMismatchError``. The diagnosis therefore comes from the layer and the
trace, not from PyTorch's wording, and reads the same on every device.

The contracts are grouped by layer family, one module each (``base``: what they are
made of; ``dense``, ``norms``, ``sequence``, ``reshape``); this module holds the table
(``CONTRACTS``, ``STRICT_DTYPE``) and its lookup, and re-exports ``Violation``,
``Contract``, ``fmt_shape`` and ``check_device_dtype`` from ``base``.

May import: its own modules and torch.
"""

from __future__ import annotations

from torch import nn

from inspectnn.checks.contracts.base import Contract, Violation, check_device_dtype, fmt_shape
from inspectnn.checks.contracts.dense import _bilinear, _conv, _embedding, _linear
from inspectnn.checks.contracts.norms import _NORM_RANK, _batchnorm, _groupnorm, _layernorm
from inspectnn.checks.contracts.reshape import _flatten, _pixel_shuffle, _pool, _unflatten
from inspectnn.checks.contracts.sequence import _mha, _rnn, _transformer_layer

__all__ = [
    "CONTRACTS",
    "STRICT_DTYPE",
    "Contract",
    "Violation",
    "check_device_dtype",
    "contract_for",
    "contract_for_class",
    "fmt_shape",
]


CONTRACTS: dict[type[nn.Module], Contract] = {
    nn.Linear: _linear,
    nn.modules.linear.NonDynamicallyQuantizableLinear: _linear,
    nn.Bilinear: _bilinear,
    **{cls: _conv for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                              nn.ConvTranspose2d, nn.ConvTranspose3d)},
    **{cls: _batchnorm for cls in _NORM_RANK},
    nn.LayerNorm: _layernorm,
    nn.GroupNorm: _groupnorm,
    nn.Embedding: _embedding,
    nn.EmbeddingBag: _embedding,
    nn.RNN: _rnn, nn.LSTM: _rnn, nn.GRU: _rnn,
    nn.MultiheadAttention: _mha,
    nn.TransformerEncoderLayer: _transformer_layer,
    nn.TransformerDecoderLayer: _transformer_layer,
    nn.Flatten: _flatten,
    nn.Unflatten: _unflatten,
    **{cls: _pool for cls in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
                              nn.AvgPool2d, nn.AvgPool3d)},
    nn.PixelShuffle: _pixel_shuffle,
}  # fmt: skip


STRICT_DTYPE: frozenset[type[nn.Module]] = frozenset(
    {
        nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear, nn.Bilinear,
        nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
        nn.ConvTranspose3d, nn.RNN, nn.LSTM, nn.GRU, nn.MultiheadAttention,
        nn.Embedding, nn.EmbeddingBag,
    }
)  # fmt: skip
"""Layers whose kernels never mix dtypes (outside autocast): a dtype mismatch there is
raised before the call. Norm layers are left out: they accept half input with float
statistics, so a mismatch there is only an error if the call then fails."""


def contract_for(module: nn.Module) -> Contract | None:
    """The contract of ``module``'s class, or of a torch base class whose forward it keeps."""
    return contract_for_class(type(module))


def contract_for_class(cls: type[nn.Module]) -> Contract | None:
    """The contract of instances of ``cls`` (see :func:`contract_for`)."""
    found = CONTRACTS.get(cls)
    if found is not None:
        return found
    for base in cls.__mro__[1:]:
        if base in CONTRACTS and cls.forward is base.forward:
            return CONTRACTS[base]
    return None
