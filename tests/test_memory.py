from paddleseg.utils import memory


def test_keep_freed_memory_raises_glibcs_thresholds(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return 1

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: FakeLibc())
    assert memory.keep_freed_memory() is True
    assert calls == [(-3, 32 << 20), (-1, 64 << 20)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


def test_keep_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    def no_libc(name):
        raise OSError("not here")

    monkeypatch.setattr(memory.ctypes, "CDLL", no_libc)
    assert memory.keep_freed_memory() is False


def test_the_kept_block_size_can_be_set_in_megabytes_and_a_bad_value_names_the_variable():
    import pytest

    from paddleseg.errors import UserError

    assert memory.keep_bytes({}) == 32 << 20
    assert memory.keep_bytes({"PADDLESEG_MALLOC_KEEP_MB": "8"}) == 8 << 20
    for bad in ("0", "-1", "8MB", ""):
        with pytest.raises(UserError, match="PADDLESEG_MALLOC_KEEP_MB"):
            memory.keep_bytes({"PADDLESEG_MALLOC_KEEP_MB": bad})


class TrimmingLibc:
    def __init__(self, calls):
        self.calls = calls

    def mallopt(self, option, value):
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_only_the_recomputing_set_up_trims_the_heap_before_the_peak(monkeypatch):
    calls = []
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: TrimmingLibc(calls))
    try:
        assert memory.keep_freed_memory(recompute=True)
        memory.trim_before_peak()
        assert calls == [("malloc_trim", 0)]
        assert memory.keep_freed_memory()  # set up again without recompute: no trimming
        memory.trim_before_peak()
        assert calls == [("malloc_trim", 0)]
    finally:
        memory._malloc_trim = None


def test_the_training_step_trims_between_the_forward_pass_and_the_losses(monkeypatch):
    import paddle

    import paddleseg.core.training.step as train
    from paddleseg.losses import CrossEntropyLoss
    from paddleseg.models import ESPNetV2

    order = []
    real_losses = train.compute_losses
    monkeypatch.setattr(train, "trim_before_peak", lambda: order.append("trim"))
    monkeypatch.setattr(train, "compute_losses", lambda *a, **k: order.append("losses") or real_losses(*a, **k))
    model = ESPNetV2(scale=0.5)
    model.train()
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: order.append("forward") or real_forward(x))
    optimizer = paddle.optimizer.SGD(learning_rate=0.0, parameters=model.parameters())
    batch = {"img": paddle.randn([1, 3, 32, 64]), "label": paddle.zeros([1, 32, 64], dtype="int64")}
    train.step(model, optimizer, None, {"types": [CrossEntropyLoss()] * 2, "coef": [1, 1]}, batch)
    assert order == ["forward", "trim", "losses"]
