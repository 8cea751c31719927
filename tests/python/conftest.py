"""Shared setup of the Python tests: where the data, the command line and the module are.

CTest sets PYTHONPATH (the build tree's package), DEPASS_CLI (the build's command line) and
DEPASS_DATA_DEFAULT (tests/data); DEPASS_SHARED_DIR, when set, points the data elsewhere, as it
does for the C++ tests.
"""

import json
import os
import struct
import subprocess

import numpy as np
import pytest

SOURCE = os.environ.get("DEPASS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("DEPASS_SHARED_DIR") or os.environ.get("DEPASS_DATA_DEFAULT") or os.path.join(
    SOURCE, "tests", "data"
)
CLI = os.environ.get("DEPASS_CLI", os.path.join(SOURCE, "build", "depass"))

FIXTURES = ["llama-gqa-s1", "qwen2-s1", "gpt2-s1", "llama3-rope-s2"]
SHIPPED = os.path.join(SOURCE, "weights", "stories260K.bin")


def fixture_dir(name):
    return os.path.join(DATA, "fixtures", name)


def fixture_ids(name):
    with open(os.path.join(fixture_dir(name), "tokens.json")) as f:
        return json.load(f)["input_ids"]


def require(path):
    """Fails (never skips) when test data is missing: every test must run."""
    if not os.path.exists(path):
        pytest.fail(f"test data missing: {path} (set DEPASS_SHARED_DIR or restore tests/data)")
    return path


def run_cli(*args, check=True):
    """Runs the command line; returns (returncode, stdout, stderr)."""
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"depass {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p.returncode, p.stdout, p.stderr


# ---- a safetensors reader and writer of its own (the format: 8-byte header length, JSON header,
# raw little-endian data), so the tests read the command line's files without depass.

_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64,
           "BF16": None}


def read_safetensors(path):
    """{name: array}, plus the "__metadata__" dict under the key None."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {None: header.pop("__metadata__", {})}
    for name, info in header.items():
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")).reshape(
            info["shape"]
        )
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_random_llama(directory, D=64, I=160, L=2, H=4, Hkv=2, V=256, positions=512, scale=0.05, norm_gain=1.0, seed=0):
    """A random LLaMA-architecture model in Hugging Face layout (config.json + model.safetensors)."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    Dh = D // H
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": D,
        "intermediate_size": I,
        "num_hidden_layers": L,
        "num_attention_heads": H,
        "num_key_value_heads": Hkv,
        "vocab_size": V,
        "max_position_embeddings": positions,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    t = {"model.embed_tokens.weight": rng.normal(0, scale, (V, D))}
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = np.full(D, norm_gain)
        t[p + "post_attention_layernorm.weight"] = np.full(D, norm_gain)
        t[p + "self_attn.q_proj.weight"] = rng.normal(0, scale, (H * Dh, D))
        t[p + "self_attn.k_proj.weight"] = rng.normal(0, scale, (Hkv * Dh, D))
        t[p + "self_attn.v_proj.weight"] = rng.normal(0, scale, (Hkv * Dh, D))
        t[p + "self_attn.o_proj.weight"] = rng.normal(0, scale, (D, H * Dh))
        t[p + "mlp.gate_proj.weight"] = rng.normal(0, scale, (I, D))
        t[p + "mlp.up_proj.weight"] = rng.normal(0, scale, (I, D))
        t[p + "mlp.down_proj.weight"] = rng.normal(0, scale, (D, I))
    t["model.norm.weight"] = np.ones(D)
    t["lm_head.weight"] = rng.normal(0, scale, (V, D))
    write_safetensors(os.path.join(directory, "model.safetensors"), t)
    return directory
