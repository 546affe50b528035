"""Worker script: DistributedOptimizer keeps sparse gradients sparse (Horovod's default,
sparse_as_dense=False), so torch.optim.SparseAdam works; rank-dependent rows and weights,
closed-form expectations, at whatever world size it is started with.

Rank 0 prints "OK <check>" per check group and "DONE <count>"; any failure raises.
"""

import torch
from torch import nn
from torch_checks import finish, ok

import ringtrain.torch as hvd

hvd.init()
R, N = hvd.rank(), hvd.size()
ROWS, DIM = 11, 3


def rows_of(rank):
    """The embedding rows rank ``rank`` looks up (overlapping between ranks, one repeated)."""
    return [rank % ROWS, (rank + 1) % ROWS, 4, 4]


def expected_grad(ranks, op=hvd.Average):
    """d/dW of sum_r (r + 1) * sum(E[rows_of(r)]), averaged (or summed) over N ranks."""
    grad = torch.zeros(ROWS, DIM, dtype=torch.float64)
    for r in ranks:
        for row in rows_of(r):
            grad[row] += r + 1
    return grad / N if op is hvd.Average else grad


def model_and_loss(seed=0):
    torch.manual_seed(seed)
    emb = nn.Embedding(ROWS, DIM, sparse=True).double()
    return emb, lambda: (emb(torch.tensor(rows_of(R))) * (R + 1)).sum()


def same_everywhere(t):
    gathered = hvd.allgather(t.detach().reshape(1, -1))
    return all(torch.equal(gathered[0], row) for row in gathered)


# --- the gradient stays sparse and holds the average (or the sum) ----------------------------------
for op in (hvd.Average, hvd.Sum):
    emb, loss = model_and_loss()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(emb.parameters(), lr=0.5),
                                   named_parameters=emb.named_parameters(), op=op)
    opt.zero_grad()
    loss().backward()
    grad = emb.weight.grad
    assert grad.is_sparse, grad.layout
    exp = expected_grad(range(N), op)
    assert torch.allclose(grad.to_dense(), exp, rtol=0, atol=1e-12), (grad.to_dense(), exp)
    before = emb.weight.detach().clone()
    opt.step()
    assert torch.allclose(emb.weight.detach(), before - 0.5 * exp, rtol=0, atol=1e-12)
ok("sparse-grad")

# --- SparseAdam: every rank takes the same step ----------------------------------------------------
emb, loss = model_and_loss(seed=1)
opt = hvd.DistributedOptimizer(torch.optim.SparseAdam(list(emb.parameters()), lr=0.1),
                               named_parameters=emb.named_parameters())
for _ in range(3):
    opt.zero_grad()
    loss().backward()
    opt.step()
assert same_everywhere(emb.weight)
untouched = [row for row in range(ROWS) if all(row not in rows_of(r) for r in range(N))]
torch.manual_seed(1)
start = nn.Embedding(ROWS, DIM).double().weight.detach()
assert torch.equal(emb.weight.detach()[untouched], start[untouched])   # lazy: never updated
assert not torch.equal(emb.weight.detach()[4], start[4])
ok("sparse-adam")

# --- a rank without a gradient, next to dense parameters, and sparse_as_dense=True -----------------
torch.manual_seed(2)
emb = nn.Embedding(ROWS, DIM, sparse=True).double()
head = nn.Linear(DIM, 1).double()
params = [("emb." + n, p) for n, p in emb.named_parameters()] + \
    [("head." + n, p) for n, p in head.named_parameters()]
opt = hvd.DistributedOptimizer(torch.optim.SGD([p for _, p in params], lr=0.1),
                               named_parameters=params, bucket_bytes=64)
opt.zero_grad()
dense_loss = head(torch.full((1, DIM), float(R), dtype=torch.float64)).sum()
present = range(1, N) if N > 1 else range(1)     # rank 0 skips the embedding (N > 1)
if R in present:
    (dense_loss + (emb(torch.tensor(rows_of(R))) * (R + 1)).sum()).backward()
else:           # the others' sparse gradients are gathered for rank 0 too
    dense_loss.backward()
opt.synchronize()
assert emb.weight.grad.is_sparse
assert torch.allclose(emb.weight.grad.to_dense(), expected_grad(present), rtol=0, atol=1e-12)
mean_rank = (N - 1) / 2             # d/dw of w . (r, r, r): (r, r, r), averaged over ranks
assert torch.allclose(head.weight.grad, torch.full((1, DIM), mean_rank, dtype=torch.float64))
with opt.skip_synchronize():
    opt.step()
assert same_everywhere(emb.weight) and same_everywhere(head.weight)

emb, loss = model_and_loss()
opt = hvd.DistributedOptimizer(torch.optim.SGD(emb.parameters(), lr=0.5),
                               named_parameters=emb.named_parameters(), sparse_as_dense=True)
opt.zero_grad()
loss().backward()
grad = emb.weight.grad
assert grad.is_sparse, grad.layout      # averaged dense, then sparse again (Horovod's rule)
assert torch.allclose(grad.to_dense(), expected_grad(range(N)), rtol=0, atol=1e-12)
emb, loss = model_and_loss(seed=1)      # so SparseAdam, which takes sparse gradients only, steps
opt = hvd.DistributedOptimizer(torch.optim.SparseAdam(list(emb.parameters()), lr=0.1),
                               named_parameters=emb.named_parameters(), sparse_as_dense=True)
for _ in range(2):
    opt.zero_grad()
    loss().backward()
    opt.step()
assert same_everywhere(emb.weight)
ok("mixed")

finish(3)
