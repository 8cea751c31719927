"""depass: DePass attribution (decomposed forward pass) for transformer language models.

Run one ordinary forward pass, split a hidden state into additive components (input tokens,
attention heads, MLP neurons, modules, subspaces or your own), push every component through
the rest of the network with the attention probabilities, norm factors and MLP activations
frozen, and read each component's share of the final logits. The components always add up
to the true hidden state (completeness); every run checks it at every residual point.

    import depass
    model = depass.load_model("weights/stories260K.bin")
    result = depass.attribute(model, "Once upon a time")
    result.logit_attribution        # [M, N, K] numpy array; sums over m to result.target_logits
    result.to_html("attr.html")     # the same page `depass attribute --html` writes

The same library as the `depass` command line does the work, in C++ and with the GIL
released; results are identical to the command line's files. See docs/python.md.

Errors: bad arguments, ids and indices raise ValueError; a missing file FileNotFoundError and
an unreadable or malformed one OSError (both name the file); a run that would not fit in the
free memory MemoryError (before any work); a completeness violation depass.CompletenessError
(a RuntimeError). Ctrl-C stops a long run at the end of the block in progress
(KeyboardInterrupt).
"""

import os as _os

# Idle OpenMP threads sleep instead of spinning next to the interpreter (what the command line
# arranges too); read by the OpenMP runtime when it loads, i.e. with the extension below.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _depass  # noqa: E402
from ._depass import Attribution, CompletenessError, ComponentInfo, Model, Tokenizer  # noqa: E402,F401

__all__ = [
    "load_model",
    "load_tokenizer",
    "read_config",
    "forward",
    "attribute",
    "compare",
    "Model",
    "Tokenizer",
    "Trace",
    "Attribution",
    "ComponentInfo",
    "CompareResult",
    "CompletenessError",
]

__version__ = "0.1.0"


def load_model(path, dtype="float32", weights="auto", tokenizer=None):
    """Load a model: a Hugging Face directory (config.json + *.safetensors, sharded or not), a
    .gguf file or a llama2.c .bin checkpoint (the paths `depass --model` takes).

    dtype: "float32" (fast) or "float64" (ground truth); numpy.float32 / numpy.float64 work too.
    weights: "resident" (every weight widened when loading), "streamed" (the blocks' weights
        stay in the file, memory-mapped, and are widened one block at a time when a pass
        reaches it; the same results bit for bit) or "auto" (streamed when the widened weights
        could exceed half the free memory).
    tokenizer: a tokenizer file to use instead of the one found next to the model.

    Returns a depass.Model: .config (a dict), .tokenizer, .tokenize(text), .decode(ids).
    Raises FileNotFoundError / OSError naming the file and field, ValueError for a bad
    argument, MemoryError when the model would not fit.
    """
    return _depass.load_model(path, dtype, weights, tokenizer)


def load_tokenizer(path):
    """Open a tokenizer by file type: Hugging Face tokenizer.json (or vocab.json with
    merges.txt beside it), SentencePiece tokenizer.model, llama2.c tokenizer .bin, or the
    vocabulary inside a .gguf file. Returns a depass.Tokenizer (.tokenize(text, bos=True),
    .decode(ids), .vocab_size)."""
    return _depass.load_tokenizer(path)


def read_config(path):
    """The configuration of the model at `path` (as load_model takes it) as a dict, without
    reading any weight."""
    return _depass.read_config(path)


class Trace:
    """The recorded forward pass as numpy arrays, under the names, shapes and axis order of
    `depass forward --dump` (and of the reference goldens):

        embeddings [N, D], hidden_states [L+1, N, D] (index L = the final norm's output),
        layer_outputs [L, N, D], final_residual_prenorm [N, D], final_norm_out [N, D],
        final_norm_inv_rms [N], final_norm_mean [N] (LayerNorm models), attn_probs
        [L, H, N, N], attn_out [L, N, D], post_attn_residual [L, N, D], mlp_act [L, N, I],
        logits [N, V], input_ids [N] (int64).

    Read them as trace["logits"] or trace.logits; trace.names lists them in that order.
    The arrays are the model's dtype (float32 or float64) and belong to the trace (copies of
    the library's buffers, made once).
    """

    def __init__(self, tensors):
        self._tensors = tensors

    @property
    def names(self):
        return list(self._tensors)

    def keys(self):
        return self._tensors.keys()

    def items(self):
        return self._tensors.items()

    def __getitem__(self, name):
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"no tensor '{name}' in the trace (it has: {', '.join(self._tensors)})") from None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._tensors[name]
        except KeyError:
            raise AttributeError(f"no tensor '{name}' in the trace (it has: {', '.join(self._tensors)})") from None

    def __contains__(self, name):
        return name in self._tensors

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)

    def __repr__(self):
        n = self._tensors["input_ids"].shape[0]
        return f"<depass.Trace of {n} tokens: {', '.join(self._tensors)}>"


def forward(model, ids_or_text):
    """Run the recorded forward pass on token ids (a list or 1-D integer array) or on a text
    (tokenised with model.tokenizer, BOS in front). Returns a depass.Trace."""
    return Trace(_depass._forward(model, ids_or_text))


def attribute(
    model,
    ids_or_text,
    level="token",
    layer=0,
    module="attn",
    heads=None,
    neurons=None,
    neuron_groups=None,
    basis=None,
    components=None,
    rule="softmax",
    temperature=0.1,
    ignore_special_token=None,
    targets=None,
    all_layers=False,
    qk=None,
    qk_heads=None,
    query_positions=None,
):
    """Decompose a hidden state into components and attribute the target logits to them
    (the same run as `depass attribute`).

    ids_or_text: token ids (list or 1-D integer array), or a text tokenised with
        model.tokenizer (BOS in front).
    level, and where the decomposition starts:
        "token"     one component per input token at the residual h[layer] (0 = embeddings)
        "module"    the attention (module="attn") or MLP (module="mlp") output of block `layer`
        "head"      each attention head's output of block `layer` (heads=[...] to choose some)
        "neuron"    each MLP neuron of block `layer` (neurons=[...] to choose,
                    neuron_groups=G for every neuron in G contiguous groups)
        "subspace"  projections of h[layer] onto the subspaces of `basis`: one array (or .npy
                    path) [D, k] basis or [D, D] projector, or a list of them
        "custom"    your own components at h[layer]: `components` [K, N, D] (array or .npy
                    path), which must sum to the state there
        The last component is always the rest (biases and whatever the chosen components do
        not cover).
    rule: how an MLP neuron's activation is shared among the components: "softmax" (with
        `temperature`), "max", "relu", "linear" or "taylor".
    ignore_special_token: exclude the first component from the MLP shares (None: on for the
        token level, off otherwise).
    targets: None (the model's argmax next token at every position), token ids for every
        position, or [N, K] ids per position.
    all_layers: also keep the components at every residual point (components_by_point).
    qk: a block L: also split its attention logits over (query-side, key-side) pairs of the
        components at its input h[L] (the cut must be at or before it); qk_heads and
        query_positions choose what to split (default all). Result: qk_logits
        [H', M, M, Nq, N], qk_heads, qk_queries, qk_check (docs/levels/qk.md).

    Input arrays may be any numpy array (C or Fortran order, float16/32/64); they are
    converted once. Returns a depass.Attribution:
        logit_attribution [M, N, K] (sums over m to target_logits [N, K]), components [M, N, D]
        at the final residual, targets [N, K], component_names, component_info (kind, layer,
        index), completeness_max_rel, save(path) and to_html(path) (what the command line
        writes, byte for byte).
    """
    return _depass.attribute(
        model,
        ids_or_text,
        level,
        layer,
        module,
        heads,
        neurons,
        neuron_groups,
        basis,
        components,
        rule,
        temperature,
        ignore_special_token,
        targets,
        all_layers,
        qk,
        qk_heads,
        query_positions,
    )


class CompareResult:
    """The outcome of depass.compare: .passed (also the truth value), .verdict (one line),
    .table (the text `depass compare` prints), .rows (one dict per tensor: name, status,
    passed, shapes, dtypes, max_abs, max_rel, scale, tolerance, worst_index, nonfinite,
    first_bad_slice, message), .first_failure (the earliest failing tensor in forward order,
    or None), .notes, .json (the `--json` document)."""

    def __init__(self, d):
        self.passed = d["passed"]
        self.verdict = d["verdict"]
        self.table = d["table"]
        self.json = d["json"]
        self.rows = d["rows"]
        self.compared = d["compared"]
        self.failed = d["failed"]
        self.first_failure = d["first_failure"]
        self.notes = d["notes"]

    def __bool__(self):
        return bool(self.passed)

    def __str__(self):
        return self.table + self.verdict

    def __repr__(self):
        return f"<depass.CompareResult {self.verdict}>"


def compare(reference, candidate, rtol=1e-4, atol=0.0, only=None):
    """Compare another engine's tensors with a reference, tensor by tensor, as `depass compare`
    does: in the order the network computes them, so the first failure is where the two first
    part ways. A tensor passes when |cand - ref| <= atol + rtol * max|ref| everywhere; integer
    tensors must match exactly; NaN/Inf, a shape mismatch or a missing tensor fail.

    reference, candidate: a path (.safetensors file, or a directory of .npy files) or a dict of
        numpy arrays (or anything numpy converts, e.g. CPU torch tensors) under the
        `depass forward --dump` / `depass attribute --out` names.
    only: compare only these names.
    Returns a depass.CompareResult (true when every tensor passes).
    """
    if only is not None and isinstance(only, str):
        only = [only]
    ref = reference if isinstance(reference, dict) else _os.fspath(reference)
    cand = candidate if isinstance(candidate, dict) else _os.fspath(candidate)
    return CompareResult(_depass._compare(ref, cand, float(rtol), float(atol), only))
