"""Convert an exported Paddle static model to ONNX: paddle2onnx, then the PRelu → LeakyRelu rewrite.

    python paddleseg/core/onnx_convert.py MODEL_JSON PARAMS ONNX_FILE OPSET

:func:`paddleseg.core.export.export_onnx` runs this file as a child process, because paddle2onnx
aborts the whole process (SIGABRT, no Python exception) on some errors, for instance an opset the
model cannot be expressed in; only the child dies, and the export reports it as an error. The file
imports only paddle2onnx and onnx (not this package), so the child starts quickly. Exit status 0:
``ONNX_FILE`` is written and passes the ONNX checker; otherwise the last line on stderr starting with
``error: `` says why (unless the process was killed by a signal).
"""
import sys
from pathlib import Path


def convert(model_file: Path, params_file: Path, onnx_file: Path, opset: int) -> int:
    """Write ``onnx_file`` in exactly ``opset`` (no silent upgrade); returns the PRelu nodes rewritten."""
    import paddle2onnx

    paddle2onnx.export(str(model_file), str(params_file), str(onnx_file), opset_version=opset,
                       auto_upgrade_opset=False, enable_onnx_checker=True, verbose=False)
    if not onnx_file.is_file():  # paddle2onnx logs Python-side failures instead of raising them
        raise RuntimeError(f"paddle2onnx did not write {onnx_file} (its messages are above)")
    return prelu_to_leaky_relu(onnx_file)


def prelu_to_leaky_relu(onnx_file: Path) -> int:
    """Rewrite every ``PRelu`` whose slope is a constant with one repeated value as ``LeakyRelu``
    with that value: the same ``x if x >= 0 else alpha * x``, but ONNX Runtime runs LeakyRelu
    vectorised, while its broadcasting PRelu took much of the run time (docs/performance.md). Returns the count."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_file))
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    rewritten = 0
    for i, node in enumerate(graph.node):
        if node.op_type != "PRelu" or node.input[1] not in constants:
            continue
        slope = numpy_helper.to_array(constants[node.input[1]]).ravel()
        if slope.size == 0 or not (slope == slope[0]).all():
            continue
        graph.node[i].CopyFrom(helper.make_node("LeakyRelu", [node.input[0]], list(node.output), name=node.name,
                                                alpha=float(slope[0])))
        rewritten += 1
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_file))
    return rewritten


def main(argv) -> int:
    if len(argv) != 4:
        print(f"error: usage: {Path(__file__).name} MODEL_JSON PARAMS ONNX_FILE OPSET", file=sys.stderr)
        return 2
    model_file, params_file, onnx_file, opset = argv
    try:
        rewritten = convert(Path(model_file), Path(params_file), Path(onnx_file), int(opset))
    except Exception as e:  # reported to the parent as one line; it owns the error handling
        print(f"error: {type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    print(f"rewrote {rewritten} PRelu nodes as LeakyRelu")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
