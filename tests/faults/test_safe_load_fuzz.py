"""Fuzzing the checkpoint loader: thousands of randomly damaged copies of valid checkpoints (bit flips,
truncations, opcode swaps, inserted, deleted and duplicated bytes) either load or are refused with a
CheckpointError. None may crash the process, raise anything else, hang or pass the memory cap: the
child process runs under an address-space cap of its size after import plus 1 GB and a timeout."""
import pickle
import subprocess
import textwrap

import numpy as np
import pytest

from conftest import REPO
from fault_helpers import PYTHON, memory_limit, peak_rss

CASES = 3000


def corpus(folder):
    """Valid checkpoints in the forms paddle.save writes (protocols 2 and 4; weights, optimizer state
    with a scheduler and EMA, numpy scalars, a sliced big parameter)."""
    rng = np.random.default_rng(0)
    weights = {f"backbone.level{i}.conv.weight": rng.standard_normal((4, 3, 3, 3)).astype("float32") for i in range(4)}
    weights.update({"head.bn._mean": np.zeros(4, "float32"), "head.bn._variance": np.ones(4, ">f4")})
    optimizer = {f"{k}@moment1": np.zeros_like(v) for k, v in list(weights.items())[:3]}
    optimizer.update({"LR_Scheduler": {"last_epoch": 7, "last_lr": np.float64(0.001)},
                      "EMA": {k: v.copy() for k, v in list(weights.items())[:2]},
                      "GradScaler": {"scale": np.float32(1024.0), "incr_count": 3}})
    big = {"w@@.0": np.arange(6, dtype="float32"), "w@@.1": np.arange(2, dtype="float32"),
           "UnpackBigParamInfor@@": {"w": {"OriginShape": (2, 4), "slices": ["w@@.0", "w@@.1"]}}}
    files = []
    for name, obj in (("model", weights), ("opt", optimizer), ("big", big)):
        for protocol in (2, 4):
            path = folder / f"{name}_p{protocol}.pdparams"
            path.write_bytes(pickle.dumps(obj, protocol=protocol))
            files.append(path)
    return files


@pytest.mark.slow
def test_damaged_checkpoints_load_or_are_refused_never_crash(tmp_path):
    seeds = corpus(tmp_path)
    script = memory_limit("paddleseg.checkpoint") + textwrap.dedent(f"""
        import pathlib, pickletools, random, time, traceback
        from paddleseg.checkpoint import safe_load
        from paddleseg.errors import CheckpointError

        rng = random.Random(1234)
        seeds = [pathlib.Path(p).read_bytes() for p in {[str(p) for p in seeds]!r}]
        opcode_bytes = [op.code.encode('latin-1') for op in pickletools.opcodes]
        target = pathlib.Path({str(tmp_path / "case.pdparams")!r})

        def mutate(data):
            data = bytearray(data)
            kind = rng.choice(['flip', 'truncate', 'opcode', 'insert', 'delete', 'duplicate', 'several'])
            rounds = rng.randint(2, 6) if kind == 'several' else 1
            for _ in range(rounds):
                kind_now = rng.choice(['flip', 'truncate', 'opcode', 'insert', 'delete', 'duplicate']) \\
                    if kind == 'several' else kind
                at = rng.randrange(len(data)) if data else 0
                if kind_now == 'flip' and data:
                    data[at] ^= 1 << rng.randrange(8)
                elif kind_now == 'truncate':
                    data = data[:at]
                elif kind_now == 'opcode' and data:
                    data[at:at + 1] = rng.choice(opcode_bytes)
                elif kind_now == 'insert':
                    data[at:at] = rng.choice(opcode_bytes + [bytes([rng.randrange(256)])])
                elif kind_now == 'delete' and data:
                    del data[at]
                elif kind_now == 'duplicate' and data:
                    end = min(len(data), at + rng.randint(1, 64))
                    data[at:at] = data[at:end]
            return bytes(data)

        outcomes = {{'loaded': 0, 'refused': 0}}
        slowest = 0.0
        for case in range({CASES}):
            data = mutate(rng.choice(seeds))
            target.write_bytes(data)
            start = time.monotonic()
            try:
                safe_load(target)
                outcomes['loaded'] += 1
            except CheckpointError:
                outcomes['refused'] += 1
            except BaseException:
                print('CASE', case, data.hex())
                traceback.print_exc()
                raise SystemExit(1)
            slowest = max(slowest, time.monotonic() - start)
        print('OUTCOMES', outcomes['loaded'], outcomes['refused'], round(slowest, 3))
    """)
    done = subprocess.run([PYTHON, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-4000:])
    loaded, refused, slowest = done.stdout.split("OUTCOMES", 1)[1].split()
    assert int(loaded) + int(refused) == CASES
    assert int(refused) > CASES // 2 and int(loaded) > 0  # the mutations reach both outcomes
    assert float(slowest) < 5.0, slowest
    assert peak_rss(done.stderr) < 1_000_000_000
