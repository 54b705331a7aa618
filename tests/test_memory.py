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
