"""Worker for tests/test_torch_mp.py: op=hvd.Adasum against its closed forms (float64).

Adasum(a, b) = (1 - a.b / 2|a|^2) a + (1 - a.b / 2|b|^2) b, combined over a power of 2 of
workers in Horovod's tree (ranks 0+1, 2+3, then the pairs). Checked: equal tensors give
themselves back, orthogonal ones add up, rank-dependent ones match the tree computed here from
every rank's input; grouped tensors each get their own coefficients; DistributedOptimizer
(op=hvd.Adasum) with SGD moves each parameter by -lr * Adasum of the workers' gradients.
Prints ``ADASUM-OK rank=R checks=N``."""

import torch

import ringtrain.torch as hvd

hvd.init()
R, N = hvd.rank(), hvd.size()
torch.set_default_dtype(torch.float64)
checks = 0


def pair(a, b):
    dot = a @ b
    return (1 - dot / (2 * (a @ a))) * a + (1 - dot / (2 * (b @ b))) * b


def tree(rows):
    while len(rows) > 1:
        rows = [pair(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]
    return rows[0]


def close(got, expected, what):
    global checks
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-12, atol=1e-12):
        raise AssertionError(f"rank {R}: {what}: {got.flatten()[:5]} != {expected.flatten()[:5]}")
    checks += 1


def vec(r, n=7, seed=0):
    return torch.cos(torch.arange(n) * (r + 1.5) + seed) * (r + 1)


same = torch.linspace(-1, 2, 5)
close(hvd.allreduce(same, op=hvd.Adasum), same, "equal tensors")
basis = torch.zeros(4, N)
basis[:, R] = R + 1.0
close(hvd.allreduce(basis, op=hvd.Adasum),
      torch.arange(1.0, N + 1).expand(4, N), "orthogonal tensors add up")
close(hvd.allreduce(vec(R), op=hvd.Adasum), tree([vec(r) for r in range(N)]), "rank-dependent")
grid = vec(R, 12).reshape(3, 4)                             # any shape: the whole tensor
close(hvd.allreduce(grid, op=hvd.Adasum), tree([vec(r, 12) for r in range(N)]).reshape(3, 4),
      "3x4 tensor")
a, b = vec(R, 5, 1), vec(R, 3, 2) * 10
got = hvd.grouped_allreduce([a, b], op=hvd.Adasum)
close(got[0], tree([vec(r, 5, 1) for r in range(N)]), "grouped, first tensor")
close(got[1], tree([vec(r, 3, 2) * 10 for r in range(N)]), "grouped, second tensor")
f32 = hvd.allreduce(vec(R).float(), op=hvd.Adasum)
assert f32.dtype == torch.float32
close(f32.double(), tree([vec(r).float().double() for r in range(N)]).float().double(), "float32")

# DistributedOptimizer(op=Adasum) with SGD: parameter -= lr * Adasum(gradients), per tensor
lin = torch.nn.Linear(3, 2)
with torch.no_grad():
    lin.weight.copy_(torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]]))
    lin.bias.copy_(torch.tensor([0.1, -0.2]))
start = [p.detach().clone() for p in lin.parameters()]


def grads_of(r):
    model = torch.nn.Linear(3, 2)
    model.load_state_dict({"weight": start[0], "bias": start[1]})
    x = torch.arange(6.0).reshape(2, 3) * (r + 1) - r
    (model(x) ** 2).sum().backward()
    return [model.weight.grad, model.bias.grad]


opt = hvd.DistributedOptimizer(torch.optim.SGD(lin.parameters(), lr=0.05),
                               named_parameters=lin.named_parameters(), op=hvd.Adasum)
opt.zero_grad()
x = torch.arange(6.0).reshape(2, 3) * (R + 1) - R
(lin(x) ** 2).sum().backward()
opt.step()
every = [grads_of(r) for r in range(N)]
for i, (p, p0) in enumerate(zip(lin.parameters(), start)):
    expected = p0 - 0.05 * tree([g[i].flatten() for g in every]).reshape(p0.shape)
    close(p.detach(), expected, f"optimizer parameter {i}")
if N >= 2:      # a process set of rank 0 alone: its Adasum is its own change; the others are
    alone = hvd.add_process_set([0])        # outside it and keep their own step
    lin2 = torch.nn.Linear(3, 2)
    lin2.load_state_dict({"weight": start[0], "bias": start[1]})
    opt2 = hvd.DistributedOptimizer(torch.optim.SGD(lin2.parameters(), lr=0.05),
                                    named_parameters=lin2.named_parameters(), op=hvd.Adasum,
                                    process_set=alone)
    (lin2(x) ** 2).sum().backward()
    opt2.step()
    for i, (p, p0) in enumerate(zip(lin2.parameters(), start)):
        close(p.detach(), p0 - 0.05 * every[R][i], f"process set of one, parameter {i}")
    hvd.remove_process_set(alone)
for refuse in (lambda: hvd.reducescatter(torch.ones(2 * N), op=hvd.Adasum),
               lambda: hvd.grouped_reducescatter([torch.ones(2 * N)], op=hvd.Adasum)):
    try:        # Horovod's error for it is a RuntimeError, as NotImplementedError is
        refuse()
    except NotImplementedError as exc:
        assert "allreduce only" in str(exc), exc
        checks += 1
    else:
        raise AssertionError(f"rank {R}: reducescatter accepted op=hvd.Adasum")
print(f"ADASUM-OK rank={R} checks={checks}", flush=True)
