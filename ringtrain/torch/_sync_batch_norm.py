"""``hvd.SyncBatchNorm``: batch normalization whose statistics are those of the global batch."""

from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from . import _ops


class SyncBatchNorm(_BatchNorm):
    """Horovod's ``hvd.SyncBatchNorm`` (``torch.nn.SyncBatchNorm``'s semantics), for inputs
    (N, C, ...) of any number of dimensions.

    In training the mean and variance are those of every worker's rows together (workers may
    hold different numbers of rows, even none), so outputs, gradients and running statistics
    are those of one ``BatchNorm`` over the global batch. The statistics travel in two small
    all-reduces (the sums, then the squared deviations from the global mean: no cancellation),
    through which autograd carries the gradient. In eval mode, or with one worker, it is
    ``BatchNorm`` of this worker's rows.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"SyncBatchNorm: expected an input of at least 2 dimensions "
                             f"(N, C, ...), got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not self.training or _ops.comm().world_size == 1:
            return super().forward(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: input has {input.shape[1]} channels (dimension "
                             f"1), this module normalizes {self.num_features}")
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        sums = _ops.allreduce(torch.cat([input.sum(dims),
                                         input.new_tensor([input.numel() // channels])]),
                              op=_ops.Sum)
        count = int(sums[-1].item())
        if count <= 1:      # the same count on every worker: all raise
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel in "
                             f"training, the global batch has {count}")
        mean = sums[:-1] / count
        centered = input - mean.reshape(shape)
        var = _ops.allreduce((centered * centered).sum(dims), op=_ops.Sum) / count
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * (count / (count - 1)),
                                                       alpha=factor)
        out = centered * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out
