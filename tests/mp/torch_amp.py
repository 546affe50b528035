"""Run under ``ringrun -np N`` (RINGTRAIN_OVERLAP=1): mixed precision with ringtrain.torch.

Checks, in order (rank 0 prints ``OK <name>``):

- ``sixteen-bit``: float16/bfloat16 parameters and Compression.fp16/bf16 gradients are
  all-reduced with float32 additions: the result is the exact sum (or mean) rounded once, so
  float16 2048 + 1 + 1 is 2050 and a float16 mean of 40000s does not overflow. One rank lacks
  a gradient for a parameter, so ranks launch different buckets during backward.
- ``hvd-scaler``: autocast(float16) + GradScaler with DistributedOptimizer as Horovod documents
  (synchronize, unscale_, clip, skip_synchronize, step, update), and the plain GradScaler
  pattern, against one process training on the whole global batch.
- ``strategy-bf16`` / ``strategy-fp16``: ``strategy.scope(mixed_precision=...)`` against one
  process doing autocast (and GradScaler) by hand on the whole global batch.

In the training checks the last rank's loss is multiplied by inf at step 2: every rank must
skip that step (parameters unchanged) and halve its scale, like the reference.
"""

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch_checks import expect_raises, finish, ok

import ringtrain
import ringtrain.torch as hvd
from ringtrain.distribute.input import shard_bounds

hvd.init()
R, N = hvd.rank(), hvd.size()
INF_STEP, STEPS, GLOBAL_ROWS, LR = 2, 5, 6, 0.5
torch.manual_seed(0)
warnings.simplefilter("error")      # e.g. "step() after synchronize()" would be a failure


def same_on_every_rank(tensor):
    everyone = hvd.allgather_object(tensor.detach().clone())
    return all(torch.equal(t, everyone[0]) for t in everyone)


# --- 16-bit buckets ------------------------------------------------------------------------------

class Sixteen(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.h16 = torch.nn.Parameter(torch.zeros(7, dtype=torch.float16))
        self.b16 = torch.nn.Parameter(torch.zeros(1, dtype=torch.bfloat16))
        self.spare = torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))    # rank 0 only
        self.single = torch.nn.Parameter(torch.zeros(5))

    def loss(self, rank):
        i = torch.arange(1.0, 8.0, dtype=torch.float64)
        half = (2048.0 if rank == 0 else 1.0) * i                # fp16 sums 2048 + 1 + 1
        brain = torch.tensor([1.0 + rank / 4])
        total = (self.h16 * half.half()).sum() + (self.b16 * brain.bfloat16()).sum()
        if rank == 0:
            total = total + (self.spare * torch.full((3,), 40000.0).half()).sum()
        return total + (self.single * (1.0 + rank / 3 + torch.arange(5) / 100)).sum()


def sixteen_bit():
    model = Sixteen()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=1.0),
                                   named_parameters=model.named_parameters(), op=hvd.Sum,
                                   bucket_bytes=1)
    model.loss(R).backward()
    expected_half = sum((2048.0 if r == 0 else 1.0) * torch.arange(1.0, 8.0, dtype=torch.float64)
                        for r in range(N))
    assert torch.equal(model.h16.grad, expected_half.half()), model.h16.grad
    if N == 3:
        assert model.h16.grad[0].item() == 2050.0      # float16 summed in float16 gives 2048
    expected_single = sum(1.0 + r / 3 + torch.arange(5) / 100 for r in range(N))
    assert torch.allclose(model.single.grad, expected_single.float(), rtol=1e-6, atol=0)
    expected_brain = sum(torch.tensor([1.0 + r / 4]) for r in range(N))
    assert torch.equal(model.b16.grad, expected_brain.bfloat16())
    assert torch.equal(model.spare.grad, torch.full((3,), 40000.0).half())   # rank 0's alone
    opt.zero_grad()

    # The mean of 40000 + 64 r in float16: the sum overflows float16 (65504), the mean not.
    big = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    avg = hvd.DistributedOptimizer(torch.optim.SGD([big], lr=1.0),
                                   named_parameters=[("big", big)])
    (big * torch.full((4,), 40000.0 + 64 * R).half()).sum().backward()
    mean = sum(40000.0 + 64 * r for r in range(N)) / N
    assert torch.equal(big.grad, torch.full((4,), mean).half()), big.grad
    avg.zero_grad()

    # Compression: float32 gradients travel as 16 bits, are added in float32, rounded once.
    for compression, wire in ((hvd.Compression.fp16, torch.float16),
                              (hvd.Compression.bf16, torch.bfloat16)):
        w = torch.nn.Parameter(torch.zeros(5))
        comp = hvd.DistributedOptimizer(torch.optim.SGD([w], lr=1.0), named_parameters=[("w", w)],
                                        compression=compression, op=hvd.Sum)
        grads = [1.0 + r / 3 + torch.arange(5) / 100 for r in range(N)]
        (w * grads[R]).sum().backward()
        exact = sum(g.to(wire).double() for g in grads).to(wire).float()
        if N == 1:      # a world of one averages nothing, so nothing is compressed (Horovod)
            exact = grads[0]
        assert w.grad.dtype == torch.float32 and torch.equal(w.grad, exact), (w.grad, exact)
        comp.zero_grad()
    ok("sixteen-bit")


# --- training with loss scaling ------------------------------------------------------------------

def global_batch(step):
    rows = np.random.default_rng(100 + step)
    x = torch.from_numpy(rows.uniform(-0.5, 0.5, size=(GLOBAL_ROWS, 5))).float()
    y = torch.from_numpy(rows.integers(0, 3, size=GLOBAL_ROWS))
    return x, y


def local_batch(step):
    x, y = global_batch(step)
    start, stop = shard_bounds(GLOBAL_ROWS, N, R)           # equal slices at N = 1, 2, 3
    return x[start:stop], y[start:stop]


def new_model():
    model = torch.nn.Linear(5, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linspace(-1, 1, 15).reshape(3, 5))
    return model


def poisoned(loss, step, rank_is_bad):
    return loss * math.inf if step == INF_STEP and rank_is_bad else loss


def reference(dtype, init_scale=None):
    """One process, the whole global batch: the weights after every step and the scales
    (``init_scale``: with a GradScaler starting there)."""
    model = new_model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    scaler = None if init_scale is None else torch.amp.GradScaler("cpu", init_scale=init_scale)
    weights, scales = [], []
    for step in range(STEPS):
        x, y = global_batch(step)
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            out = model(x)
        loss = poisoned(F.cross_entropy(out.float(), y), step, True)
        if scaler is None:
            loss.backward()
            if torch.isfinite(loss):
                opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            scales.append(scaler.get_scale())
        weights.append(model.weight.detach().clone())
    return weights, scales


def tolerance(dtype):
    """How far one worker's training may be from N workers' after ``step + 1`` steps.

    Under autocast each worker rounds its weight gradient (a sum over its rows) to the 16-bit
    dtype before the average, where one process rounds the sum over all rows once: each
    rounding is at most u = 2^-11 (float16) or 2^-8 (bfloat16) of the sum of the absolute
    terms, and those terms are |(softmax - onehot)| / rows * |x| <= 1 / rows * 0.5, so over a
    whole batch the gradients differ by at most 2 u * 0.5 per element per step, times the
    learning rate. Everything else (inputs, weights cast to 16 bits, outputs) is rounded
    identically. Over k steps (the few steps here barely amplify differences): k * LR * u.
    A wrong average (a sum, one rank's gradient, a missed step) moves weights by ~LR * 0.1.
    """
    unit = 2.0 ** -11 if dtype == torch.float16 else 2.0 ** -8
    return lambda steps: steps * LR * unit


def check_against_reference(name, dtype, weights, scales, expected):
    ref_weights, ref_scales = expected
    bound = tolerance(dtype)
    for step, (w, ref) in enumerate(zip(weights, ref_weights)):
        gap = (w - ref).abs().max().item()
        assert gap <= bound(step + 1), (name, step, gap, bound(step + 1))
        assert same_on_every_rank(w), (name, step)
    assert torch.equal(weights[INF_STEP], weights[INF_STEP - 1]), name     # skipped everywhere
    assert not torch.equal(weights[-1], weights[INF_STEP]), name           # trained after it
    assert scales == ref_scales, (name, scales, ref_scales)
    if scales:
        assert scales[INF_STEP] == scales[INF_STEP - 1] / 2, scales


def hvd_scaler():
    expected = reference(torch.float16, init_scale=1024.0)
    for pattern in ("horovod", "plain"):
        model = new_model()
        opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=LR),
                                       named_parameters=model.named_parameters())
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        weights, scales = [], []
        for step in range(STEPS):
            x, y = local_batch(step)
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):
                out = model(x)
            loss = poisoned(F.cross_entropy(out.float(), y), step, R == N - 1)
            scaler.scale(loss).backward()
            if pattern == "horovod":
                opt.synchronize()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)   # far above
                with opt.skip_synchronize():
                    scaler.step(opt)
            else:
                scaler.step(opt)
            scaler.update()
            scales.append(scaler.get_scale())
            weights.append(model.weight.detach().clone())
        check_against_reference(f"hvd-{pattern}", torch.float16, weights, scales, expected)
    ok("hvd-scaler")


def strategy_precision(setting):
    dtype = torch.bfloat16 if setting == "bf16" else torch.float16
    # GradScaler's default scale, 65536: the scaled gradients stay below float16's 65504
    # (|dW| <= 0.5 per element, see tolerance), so no step overflows but the poisoned one.
    ref_weights, ref_scales = reference(dtype, init_scale=65536.0 if setting == "fp16" else None)
    strategy = ringtrain.distribute.MirroredStrategy()
    with strategy.scope(mixed_precision=setting):
        model = new_model()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
    scaler = strategy.grad_scaler
    assert (scaler is None) == (setting == "bf16")
    weights, scales = [], []
    for step in range(STEPS):
        x, y = local_batch(step)
        opt.zero_grad()
        out = model(x)
        assert out.dtype == torch.float32       # outputs come back in float32
        loss = poisoned(F.cross_entropy(out, y), step, R == N - 1)
        if setting == "bf16" and step == INF_STEP:
            # bf16 has no scaler: a non-finite loss is the program's to skip, on every rank.
            finite = strategy.reduce("SUM", torch.tensor(float(torch.isfinite(loss))))
            strategy.backward(loss)
            if finite == N:
                opt.step()
        else:
            strategy.backward(loss)
            opt.step()
        if scaler is not None:
            scales.append(scaler.get_scale())
        weights.append(model.weight.detach().clone())
    check_against_reference(f"strategy-{setting}", dtype, weights, scales,
                            (ref_weights, ref_scales))
    if setting == "fp16":
        opt.zero_grad()
        F.cross_entropy(model(local_batch(0)[0]), local_batch(0)[1]).backward()
        expect_raises(RuntimeError, opt.step, "strategy.backward(loss)")
        expect_raises(ValueError, lambda: strategy.scope(mixed_precision="bf16").__enter__(),
                      "already uses mixed_precision='fp16'")
    expect_raises(ValueError, lambda: strategy.scope(mixed_precision="fp8").__enter__(),
                  "'no', 'bf16'")
    ok(f"strategy-{setting}")


sixteen_bit()
hvd_scaler()
strategy_precision("bf16")
strategy_precision("fp16")
finish(4)
