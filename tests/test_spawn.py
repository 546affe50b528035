"""``ringtrain.launch``: a function run on N real workers under ringrun, results back in rank
order, failures raised with the failing rank and its traceback."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ringtrain as rt

pytestmark = pytest.mark.mpi


def _sum_of_ranks(offset, scale=1):
    comm = rt.init()
    mine = np.array([comm.rank * scale + offset, 1.0])
    return comm.rank, comm.world_size, comm.allreduce(mine).tolist()


@pytest.mark.parametrize("np_", [1, 2, 3])
def test_results_come_back_in_rank_order(np_):
    results = rt.launch(_sum_of_ranks, args=(0.5,), kwargs={"scale": 10}, np=np_)
    expected_sum = [10 * np_ * (np_ - 1) / 2 + 0.5 * np_, float(np_)]
    assert results == [(r, np_, expected_sum) for r in range(np_)]


def _fails_on_rank_one():
    comm = rt.init()
    if comm.rank == 1:
        raise ValueError(f"boom on rank {comm.rank}")
    comm.allreduce(np.ones(3))      # rank 0 waits here for a rank that is gone
    return "unreachable"


def test_the_first_failure_is_raised_with_its_rank_and_traceback():
    with pytest.raises(rt.LaunchError) as err:
        rt.launch(_fails_on_rank_one, np=2, env={"RINGTRAIN_TIMEOUT": "10"}, timeout=60)
    assert err.value.rank == 1
    assert "ValueError: boom on rank 1" in err.value.traceback
    assert "_fails_on_rank_one" in err.value.traceback
    assert "rank 1 failed: ValueError: boom on rank 1" in str(err.value)


def test_a_function_defined_in_main_travels_by_value(tmp_path):
    # as in a notebook: the function lives in __main__, which the workers cannot import
    script = tmp_path / "notebook_like.py"
    script.write_text(textwrap.dedent("""
        import ringtrain as rt

        def gather_ranks():
            comm = rt.init()
            return comm.allgather_object(comm.rank * comm.rank)

        print("RESULT", rt.launch(gather_ranks, np=3))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RESULT [[0, 1, 4], [0, 1, 4], [0, 1, 4]]" in out.stdout


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_np_must_be_a_positive_count(bad):
    with pytest.raises(ValueError, match="np must be a positive number"):
        rt.launch(_sum_of_ranks, np=bad)


def test_from_a_jupyter_kernel():
    """A notebook cell defines a function and launches it; the workers' output and the
    results appear in the cell's output."""
    manager_mod = pytest.importorskip("jupyter_client.manager")
    pytest.importorskip("ipykernel")
    km, kc = manager_mod.start_new_kernel(kernel_name="python3")
    try:
        cell = textwrap.dedent("""
            import numpy as np, ringtrain as rt
            def train_step(lr):
                comm = rt.init()
                print(f"hello from rank {comm.rank}")
                return float(comm.allreduce(np.array(lr * (comm.rank + 1)))[()])
            print("RESULTS", rt.launch(train_step, args=(0.5,), np=2))
        """)
        kc.execute(cell)
        texts, status = [], None
        while status != "idle":
            msg = kc.get_iopub_msg(timeout=120)
            if msg["msg_type"] == "stream":
                texts.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                texts.append("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status":
                status = msg["content"]["execution_state"]
        out = "".join(texts)
        assert "RESULTS [1.5, 1.5]" in out, out
        assert "[1] hello from rank 1" in out and "[0] hello from rank 0" in out, out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
