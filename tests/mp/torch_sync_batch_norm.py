"""Worker for tests/test_torch_mp.py: hvd.SyncBatchNorm against torch's BatchNorm over the
global batch (every rank's rows concatenated), in float64. Ranks hold different numbers of rows
(one holds none at np 3); outputs, input gradients, the all-reduced parameter gradients and the
running statistics must match; eval mode uses the running statistics. Prints
``SYNCBN-OK rank=R checks=N``."""

import torch

import ringtrain.torch as hvd

hvd.init()
R, N = hvd.rank(), hvd.size()
torch.set_default_dtype(torch.float64)
ROWS = {1: [5], 2: [2, 3], 3: [2, 0, 3]}[N]
C = 3
checks = 0


def close(got, expected, what):
    global checks
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-10, atol=1e-12):
        raise AssertionError(f"rank {R}: {what}: {got.flatten()[:6]} != {expected.flatten()[:6]}")
    checks += 1


def rows_of(r, step, tail):
    g = torch.Generator().manual_seed(1000 * step + r)
    return torch.randn(ROWS[r], C, *tail, generator=g) * (r + 1) + r


def run(tail, momentum, reference_cls):
    sync = hvd.SyncBatchNorm(C, momentum=momentum)
    ref = reference_cls(C, momentum=momentum)
    with torch.no_grad():
        for m in (sync, ref):
            m.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
            m.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    for step in range(3):
        xs = [rows_of(r, step, tail).requires_grad_() for r in range(N)]
        up = [rows_of(r, step + 50, tail) for r in range(N)]
        x = xs[R].detach().clone().requires_grad_()
        (sync(x) * up[R]).sum().backward()
        y_ref = ref(torch.cat(xs))
        sum((y * u).sum() for y, u in zip(torch.split(y_ref, ROWS), up)).backward()
        close(x.grad, xs[R].grad, f"input gradient {tail}")
        for name in ("weight", "bias"):
            grad = hvd.allreduce(getattr(sync, name).grad, op=hvd.Sum)
            close(grad, getattr(ref, name).grad, f"{name} gradient summed over ranks {tail}")
        close(sync.running_mean, ref.running_mean, f"running mean {tail} step {step}")
        close(sync.running_var, ref.running_var, f"running variance {tail} step {step}")
        sync.zero_grad()
        ref.zero_grad()
    with torch.no_grad():       # the forward output itself, on fresh rows
        xs = [rows_of(r, 9, tail) for r in range(N)]
        sync.train()
        ref.train()
        close(sync(xs[R]), torch.split(ref(torch.cat(xs)), ROWS)[R], f"training output {tail}")
        sync.eval()
        ref.eval()
        close(sync(xs[R]), ref(xs[R]), f"eval output {tail}")


run((4,), 0.3, torch.nn.BatchNorm1d)
run((2, 3), None, torch.nn.BatchNorm2d)        # momentum None: the cumulative average
run((), 0.1, torch.nn.BatchNorm1d)             # (N, C)

# bad input: the same error on every rank, and the job goes on
bn = hvd.SyncBatchNorm(C)
for bad, needle in ((torch.zeros(C), "at least 2 dimensions"),
                    (torch.zeros(1 if R == 0 else 0, C), "more than 1 value per channel")):
    if N == 1 and needle.startswith("more"):
        bad = torch.zeros(1, C)
    try:
        bn(bad)
    except ValueError as exc:
        assert needle in str(exc), exc
        checks += 1
    else:
        raise AssertionError(f"rank {R}: no ValueError for {tuple(bad.shape)}")
close(hvd.allreduce(torch.tensor([float(R)]), op=hvd.Sum), torch.tensor([N * (N - 1) / 2]),
      "a collective after the errors")
print(f"SYNCBN-OK rank={R} checks={checks}", flush=True)
