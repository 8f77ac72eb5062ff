import pytest


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread():
    """Run torch on one intra-op thread in these tests, then restore the setting.

    On a loaded 2-core machine torch's thread pool makes a tiny conv take ~47 ms instead
    of ~9 us; these models are far too small to gain from parallelism.
    """
    try:
        import torch
    except ModuleNotFoundError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
