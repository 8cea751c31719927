#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<reader>/ from small real files and from tiny models
built here (standard library only; deterministic). Run from anywhere:

    python3 fuzz/make_seeds.py [SHARED_DIR]      # SHARED_DIR defaults to ../shared

Real inputs taken from the shared data: fixture and published config.json files, the
llama2.c tokenizer tok512.bin, the first pieces of the Llama 2 SentencePiece model, the
first entries of the GPT-2 / Llama 3 / Qwen2 tokenizer.json files, and the .npy files of
tests/data/npy. The tiny models (D 8, one layer, V 32) are random with a fixed seed.
"""
import json
import os
import random
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(REPO), "shared")
CORPUS = os.path.join(HERE, "corpus")
SEP = b"\n--8<--\n"
rng = random.Random(1234)


def out(reader, name, data):
    d = os.path.join(CORPUS, reader)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def floats(n, scale=0.3):
    return [rng.uniform(-scale, scale) for _ in range(n)]


# ---- a tiny llama: the tensor list shared by every format ----------------------------------
D, I, L, H, HKV, V, SEQ = 8, 16, 1, 2, 1, 32, 16
DH = D // H
KVD = HKV * DH


def llama_tensors_hf():
    t = [("model.embed_tokens.weight", [V, D])]
    for l in range(L):
        p = "model.layers.%d." % l
        t += [(p + "input_layernorm.weight", [D]), (p + "self_attn.q_proj.weight", [D, D]),
              (p + "self_attn.k_proj.weight", [KVD, D]), (p + "self_attn.v_proj.weight", [KVD, D]),
              (p + "self_attn.o_proj.weight", [D, D]), (p + "post_attention_layernorm.weight", [D]),
              (p + "mlp.gate_proj.weight", [I, D]), (p + "mlp.up_proj.weight", [I, D]),
              (p + "mlp.down_proj.weight", [D, I])]
    t += [("model.norm.weight", [D]), ("lm_head.weight", [V, D])]
    return t


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def safetensors(tensors, dtype="F32", metadata=None):
    """tensors: list of (name, shape[, values]); values default random. dtype F32/F16/F64/I64."""
    size = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8}[dtype]
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for entry in tensors:
        name, shape = entry[0], entry[1]
        vals = entry[2] if len(entry) > 2 else floats(numel(shape))
        if dtype == "F32":
            b = struct.pack("<%df" % len(vals), *vals)
        elif dtype == "F64":
            b = struct.pack("<%dd" % len(vals), *vals)
        elif dtype == "F16":
            b = struct.pack("<%de" % len(vals), *vals)
        elif dtype == "BF16":
            b = b"".join(struct.pack("<f", v)[2:] for v in vals)
        else:
            b = struct.pack("<%dq" % len(vals), *[int(v) for v in vals])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def llama_config():
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
            "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": H,
            "num_key_value_heads": HKV, "vocab_size": V, "max_position_embeddings": SEQ,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
            "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}


# ---- GGUF ---------------------------------------------------------------------------------
def gs(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf(kv, tensors):
    """kv: list of (key, type, value); type 'u32' 'i32' 'f32' 'bool' 'str' or ('arr', elemtype).
    tensors: list of (name, ne (ggml order), float values) stored as F32."""
    codes = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8,
             "u64": 10, "i64": 11, "f64": 12}
    fmt = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f", "bool": "?",
           "u64": "Q", "i64": "q", "f64": "d"}

    def val(t, v):
        if t == "str":
            return gs(v)
        return struct.pack("<" + fmt[t], v)

    body = struct.pack("<4sIQQ", b"GGUF", 3, len(tensors), len(kv))
    for key, t, v in kv:
        body += gs(key)
        if isinstance(t, tuple):
            et = t[1]
            body += struct.pack("<IIQ", 9, codes[et], len(v)) + b"".join(val(et, x) for x in v)
        else:
            body += struct.pack("<I", codes[t]) + val(t, v)
    data, off = b"", 0
    for name, ne, vals in tensors:
        body += gs(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        body += struct.pack("<IQ", 0, off)
        blob = struct.pack("<%df" % len(vals), *vals)
        blob += b"\0" * ((32 - len(blob) % 32) % 32)
        data += blob
        off += len(blob)
    body += b"\0" * ((32 - len(body) % 32) % 32)
    return body + data


def spm_vocab():
    """The first V pieces of tok512.bin, as GGUF tokens / scores / types."""
    raw = open(os.path.join(SHARED, "weights", "tok512.bin"), "rb").read()
    pos, toks, scores = 4, [], []
    while pos < len(raw):
        score, n = struct.unpack_from("<fi", raw, pos)
        pos += 8
        toks.append(raw[pos:pos + n])
        scores.append(score)
        pos += n
    return toks, scores


def gguf_spm_kv(nvocab):
    toks, scores = spm_vocab()
    toks = [b"<unk>", b"<s>", b"</s>"] + toks[3:nvocab]
    types = [2, 3, 3] + [6 if t.startswith(b"<0x") else 1 for t in toks[3:]]
    return [("tokenizer.ggml.model", "str", "llama"), ("tokenizer.ggml.tokens", ("arr", "str"), toks),
            ("tokenizer.ggml.scores", ("arr", "f32"), scores[:len(toks)]),
            ("tokenizer.ggml.token_type", ("arr", "i32"), types),
            ("tokenizer.ggml.bos_token_id", "u32", 1), ("tokenizer.ggml.eos_token_id", "u32", 2),
            ("tokenizer.ggml.unknown_token_id", "u32", 0), ("tokenizer.ggml.add_bos_token", "bool", True)]


def gpt2_small():
    """GPT-2's first 600 vocabulary entries, the merges among them, and <|endoftext|>."""
    tj = json.load(open(os.path.join(SHARED, "tokenizers", "gpt2", "tokenizer.json"), encoding="utf-8"))
    vocab = {k: v for k, v in tj["model"]["vocab"].items() if v < 600}
    merges = []
    for m in tj["model"]["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(a + " " + b)
    return tj, vocab, merges


def gguf_bpe_kv(pre):
    _, vocab, merges = gpt2_small()
    toks = [k for k, _ in sorted(vocab.items(), key=lambda kv: kv[1])] + ["<|endoftext|>"]
    types = [1] * (len(toks) - 1) + [3]
    return [("tokenizer.ggml.model", "str", "gpt2"), ("tokenizer.ggml.pre", "str", pre),
            ("tokenizer.ggml.tokens", ("arr", "str"), toks), ("tokenizer.ggml.token_type", ("arr", "i32"), types),
            ("tokenizer.ggml.merges", ("arr", "str"), merges),
            ("tokenizer.ggml.bos_token_id", "u32", len(toks) - 1),
            ("tokenizer.ggml.eos_token_id", "u32", len(toks) - 1)]


def gguf_llama_model(rope_freqs=False, f_tied=False):
    kv = [("general.architecture", "str", "llama"), ("general.name", "str", "tiny"),
          ("llama.embedding_length", "u32", D), ("llama.feed_forward_length", "u32", I),
          ("llama.block_count", "u32", L), ("llama.attention.head_count", "u32", H),
          ("llama.attention.head_count_kv", "u32", HKV), ("llama.context_length", "u32", SEQ),
          ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5), ("llama.rope.freq_base", "f32", 10000.0)]
    kv += gguf_spm_kv(V)
    t = [("token_embd.weight", [D, V])]
    for l in range(L):
        p = "blk.%d." % l
        t += [(p + "attn_norm.weight", [D]), (p + "attn_q.weight", [D, D]), (p + "attn_k.weight", [D, KVD]),
              (p + "attn_v.weight", [D, KVD]), (p + "attn_output.weight", [D, D]), (p + "ffn_norm.weight", [D]),
              (p + "ffn_gate.weight", [D, I]), (p + "ffn_up.weight", [D, I]), (p + "ffn_down.weight", [I, D])]
    t += [("output_norm.weight", [D])]
    if not f_tied:
        t += [("output.weight", [D, V])]
    if rope_freqs:
        t += [("rope_freqs.weight", [DH // 2])]
    vals = [[1.0 + abs(x) for x in floats(numel(ne))] if n == "rope_freqs.weight" else floats(numel(ne))
            for n, ne in t]
    return gguf(kv, [(n, ne, v) for (n, ne), v in zip(t, vals)])


# ---- llama2.c ---------------------------------------------------------------------------
def llama2c_model(shared_cls):
    hdr = struct.pack("<7i", D, I, L, H, HKV, V if shared_cls else -V, SEQ)
    n = V * D + L * D + L * D * D + 2 * L * KVD * D + L * D * D + L * D + 3 * L * I * D + D + SEQ * DH
    if not shared_cls:
        n += V * D
    return hdr + struct.pack("<%df" % n, *floats(n))


# ---- protobuf (SentencePiece model) -----------------------------------------------------
def pb_fields(buf):
    """Top-level fields of a protobuf message: list of (field number, raw bytes of the field)."""
    pos, fields = 0, []

    def varint(p):
        v, s = 0, 0
        while True:
            b = buf[p]
            v |= (b & 0x7F) << s
            p += 1
            s += 7
            if b < 0x80:
                return v, p

    while pos < len(buf):
        start = pos
        key, pos = varint(pos)
        wt = key & 7
        if wt == 0:
            _, pos = varint(pos)
        elif wt == 1:
            pos += 8
        elif wt == 2:
            n, pos = varint(pos)
            pos += n
        elif wt == 5:
            pos += 4
        else:
            raise ValueError("wire type %d" % wt)
        fields.append((key >> 3, buf[start:pos]))
    return fields


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    cfg = llama_config()

    # config.json: the fixtures' and the published ones (small text files as they are).
    for root in (os.path.join(SHARED, "fixtures"), os.path.join(SHARED, "configs")):
        for d in sorted(os.listdir(root)):
            p = os.path.join(root, d, "config.json")
            if os.path.isfile(p):
                out("config", d + ".json", open(p, "rb").read())
    out("config", "tiny-llama.json", json.dumps(cfg).encode())

    # safetensors: the tiny llama in F32, F16, BF16; a dump-like file with ints and metadata.
    tensors = llama_tensors_hf()
    out("safetensors", "tiny_llama_f32.safetensors", safetensors(tensors, "F32"))
    out("safetensors", "tiny_llama_f16.safetensors", safetensors(tensors[:4], "F16"))
    out("safetensors", "tiny_bf16.safetensors", safetensors(tensors[:3], "BF16", {"format": "pt"}))
    out("safetensors", "ids_i64.safetensors", safetensors([("input_ids", [4], [1, 5, 9, 2])], "I64"))
    out("safetensors", "f64_meta.safetensors",
        safetensors([("logits", [2, 3])], "F64", {"level": "token", "dtype": "f64"}))

    # sharded index: index + two shards.
    half = len(tensors) // 2
    wm = {n: "model-00001-of-00002.safetensors" for n, _ in tensors[:half]}
    wm.update({n: "model-00002-of-00002.safetensors" for n, _ in tensors[half:]})
    index = json.dumps({"metadata": {"total_size": 0}, "weight_map": wm}, indent=1).encode()
    out("safetensors_index", "tiny_llama_2shards",
        index + SEP + safetensors(tensors[:half]) + SEP + safetensors(tensors[half:]))

    # hf model directory: config.json + model.safetensors.
    out("hf_model", "tiny_llama", json.dumps(cfg).encode() + SEP + safetensors(tensors))
    tied = dict(cfg, tie_word_embeddings=True)
    out("hf_model", "tiny_llama_tied_f16",
        json.dumps(tied).encode() + SEP + safetensors([t for t in tensors if t[0] != "lm_head.weight"], "F16"))
    qwen = dict(cfg, model_type="qwen2", architectures=["Qwen2ForCausalLM"])
    qt = []
    for n, s in tensors:
        qt.append((n, s))
        if n.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
            qt.append((n[:-len("weight")] + "bias", [s[0]]))
    out("hf_model", "tiny_qwen2", json.dumps(qwen).encode() + SEP + safetensors(qt))

    # GGUF: a llama model with its vocabulary; vocabularies alone (SPM and BPE).
    out("gguf", "tiny_llama.gguf", gguf_llama_model())
    out("gguf", "tiny_llama_tied_ropefreqs.gguf", gguf_llama_model(rope_freqs=True, f_tied=True))
    out("gguf_vocab", "spm.gguf", gguf(gguf_spm_kv(300), []))
    for pre in ("gpt2", "llama-bpe", "qwen2"):
        out("gguf_vocab", "bpe_%s.gguf" % pre, gguf(gguf_bpe_kv(pre), []))

    # llama2.c: tiny checkpoints (shared and separate classifier); the real tok512.bin.
    out("llama2c", "tiny_shared.bin", llama2c_model(True))
    out("llama2c", "tiny_wcls.bin", llama2c_model(False))
    out("llama2c_tokenizer", "tok512.bin", open(os.path.join(SHARED, "weights", "tok512.bin"), "rb").read())

    # SentencePiece: the Llama 2 tokenizer.model cut to its first 400 pieces.
    sp = open(os.path.join(SHARED, "weights", "tokenizer.model"), "rb").read()
    kept, npieces = [], 0
    for num, raw in pb_fields(sp):
        if num == 1:
            npieces += 1
            if npieces > 400:
                continue
        kept.append(raw)
    out("sentencepiece", "llama2_400.model", b"".join(kept))

    # tokenizer.json: GPT-2, Llama 3, Qwen2 cut to their first 600 entries (+ special tokens).
    tj, vocab, merges = gpt2_small()
    small = dict(tj)
    small["model"] = dict(tj["model"], vocab=dict(vocab, **{"<|endoftext|>": 600}), merges=merges)
    small["added_tokens"] = [dict(a, id=600) for a in tj["added_tokens"]]
    gpt2cfg = open(os.path.join(SHARED, "tokenizers", "gpt2", "tokenizer_config.json"), "rb").read()
    out("tokenizer_hf", "gpt2_600.json", json.dumps(small, ensure_ascii=False).encode())
    out("tokenizer_hf", "gpt2_600_with_config", json.dumps(small, ensure_ascii=False).encode() + SEP + gpt2cfg)
    vm = dict(vocab, **{"<|endoftext|>": 600})
    out("tokenizer_hf", "gpt2_vocab_merges",
        json.dumps(vm, ensure_ascii=False).encode() + SEP + gpt2cfg + SEP +
        ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
    for name in ("llama3", "qwen"):
        full = json.load(open(os.path.join(SHARED, "tokenizers", name, "tokenizer.json"), encoding="utf-8"))
        v = {k: i for k, i in full["model"]["vocab"].items() if i < 600}
        ms = []
        for m in full["model"]["merges"]:
            a, b = m.split(" ") if isinstance(m, str) else m
            if a in v and b in v and a + b in v:
                ms.append(m)
        added = [dict(a, id=600 + k) for k, a in enumerate(full["added_tokens"][:4])]
        small = dict(full)
        small["model"] = dict(full["model"], vocab=v, merges=ms)
        small["added_tokens"] = added
        if small.get("post_processor"):
            pp = json.dumps(small["post_processor"])
            for k, a in enumerate(full["added_tokens"][:4]):
                pp = pp.replace(": %d" % a["id"], ": %d" % (600 + k))
            small["post_processor"] = json.loads(pp)
        out("tokenizer_hf", name + "_600.json", json.dumps(small, ensure_ascii=False).encode())

    # .npy: the repository's test arrays.
    npy = os.path.join(REPO, "tests", "data", "npy")
    for f in sorted(os.listdir(npy)):
        if f.endswith(".npy"):
            out("npy", f, open(os.path.join(npy, f), "rb").read())

    # compare: a dump-like safetensors file; a directory of .npy files.
    out("compare", "dump.safetensors",
        safetensors([("logits", [3, 4]), ("final_norm", [3, 8]), ("embeddings", [3, 8])], "F32",
                    {"dtype": "f32"}))
    out("compare", "ids.safetensors", safetensors([("input_ids", [3], [1, 2, 3])], "I64"))
    out("compare", "npy_dir",
        open(os.path.join(npy, "c_f4.npy"), "rb").read() + SEP + open(os.path.join(npy, "be_f8_fortran.npy"), "rb").read()
        + SEP + open(os.path.join(npy, "be_i8.npy"), "rb").read())
    out("compare", "one_npy", open(os.path.join(npy, "fortran_f4_2d.npy"), "rb").read())


if __name__ == "__main__":
    main()
