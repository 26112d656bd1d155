#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/: Hugging Face reference ids and decodes for Kiln's tokenizer tests.

Needs (PyPI): gguf, numpy, tokenizers, transformers, sentencepiece, protobuf. No torch.

The reference is transformers' own GGUF -> fast-tokenizer conversion
(`TokenizersBackend.from_pretrained(dir, gguf_file=...)`, i.e.
`transformers.integrations.gguf.gguf_tokenizer_mapping.convert_gguf_tokenizer` plus the special
tokens transformers registers). transformers' GGUF *metadata reader* imports torch at module
level, although it does not use it to read metadata, so this script puts a gguf-py based
`read_gguf_metadata` with the same contract in its place (see `_install_reader_shim`). Everything
after reading the metadata -- building the BPE, merges from scores, added/special tokens,
pre-tokenizer, decoder -- is transformers' code.

Outputs:
  smollm2.json         corpus for models/SmolLM2-135M-Instruct.Q4_1.gguf (run tools/fetch_model.sh):
                       HF ids (no special tokens added; the model has add_bos_token = false) and
                       HF decodes. Also checked against a tokenizer built like SmolLM2's published
                       tokenizer.json (Digits(individual) + ByteLevel), printed as a note.
  llama_tiny.json      a small SentencePiece BPE vocabulary (trained here with `sentencepiece`,
                       byte fallback, <unk>/<s>/</s>, one user-defined piece) written as the GGUF
                       `tokenizer.ggml.*` arrays would hold it, plus HF ids/decodes for a corpus.
  llama_tiny.tokenizer.json  HF's converted tokenizer for that vocabulary (for `from_hf_json`).

Usage: python3 tools/gen_tokenizer_fixtures.py   (from the repository root)
"""

import json
import os
import sys
import tempfile
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SMOLLM = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def _install_reader_shim():
    """Replace transformers' GGUF metadata reader (module imports torch) with gguf-py's reader.

    Same contract as transformers.integrations.gguf.reader.read_gguf_metadata: scalars as Python
    values, numeric arrays as lists, string arrays in full only when asked for (else their count).
    """
    from gguf import GGUFReader, GGUFValueType

    def read_gguf_metadata(gguf_path, string_arrays=()):
        r = GGUFReader(gguf_path)
        md = {}
        for k, f in r.fields.items():
            if k.startswith("GGUF."):
                continue
            if f.types and f.types[0] == GGUFValueType.ARRAY:
                if f.types[1] == GGUFValueType.STRING and k not in string_arrays:
                    md[k] = len(f.data)
                else:
                    md[k] = list(f.contents())
            else:
                md[k] = f.contents()
        return md, tuple(t.name for t in r.tensors)

    mod = types.ModuleType("transformers.integrations.gguf.reader")
    mod.read_gguf_metadata = read_gguf_metadata
    sys.modules["transformers.integrations.gguf.reader"] = mod


def hf_from_gguf(path):
    from transformers import TokenizersBackend

    return TokenizersBackend.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))


def case(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    ids_special = tok.encode(text, add_special_tokens=True)
    dec = tok.decode(ids, skip_special_tokens=False)
    assert dec == tok.backend_tokenizer.decode(ids, skip_special_tokens=False), text
    return {
        "text": text,
        "ids": ids,
        "ids_special": ids_special,
        "decode": dec,
        "decode_skip_special": tok.decode(ids, skip_special_tokens=True),
    }


SMOLLM_CORPUS = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "trailing space ",
    "   three leading spaces and two trailing  ",
    "multiple     spaces    inside",
    "tabs\tand\ttabs\t\t",
    "line one\nline two\n\nline four\r\nwindows",
    "\n\n\n",
    "   ",
    "12345",
    "3.14159 and 2,718,281 and -42 and 1e-9",
    "Year 2024: 365 days, 24h, 0xDEADBEEF",
    "abc123def4567",
    'fn main() {\n    println!("{}", 1 + 2);\n}\n',
    "def f(x):\n\treturn [i**2 for i in range(x) if i % 2 == 0]  # squares\n",
    '<div class="a">&amp;</div>',
    '{"key": [1, 2, 3], "nested": {"a": null}}',
    "https://example.com/path?q=1&r=two#frag",
    "你好，世界！今天天气很好。",
    "こんにちは世界。カタカナとひらがな、漢字。",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Привет, мир! Съешь ещё этих мягких французских булок.",
    "Grüße aus München: Äpfel, Öl, Übermut, Straße",
    "안녕하세요",
    "สวัสดีครับ",
    "Καλημέρα κόσμε",
    "שלום עולם",
    "I ❤️ Rust 🦀🔥",
    "👨\u200d👩\u200d👧\u200d👦 family",
    "🇺🇸🇯🇵🇩🇪",
    "👋🏽 wave",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "a<|endoftext|>b",
    "<|im_start|><|im_end|>",
    "<|im_start |> not special",
    "e\u0301 vs \u00e9, n\u0303",
    "abc\u200fdef\u200e ghi",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "\ufeffstart",
    "I'm, you're, it's, we'll, they've, she'd, DON'T",
    "!!!???...---***###",
    "∀x∈ℝ: x² ≥ 0 ⇒ √(x²) = |x|",
    "naïve café résumé coöperate",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𓀀",
    "bell\x07 null\x00 del\x7f",
    "\u00a0nbsp\u3000ideographic space",
    "Ｆｕｌｌｗｉｄｔｈ １２３",
]


def smollm2():
    if not os.path.exists(SMOLLM):
        sys.exit(f"{SMOLLM} is missing: run tools/fetch_model.sh first")
    from tokenizers import Tokenizer, decoders, pre_tokenizers

    tok = hf_from_gguf(SMOLLM)
    bt = tok.backend_tokenizer
    # SmolLM2's published tokenizer.json: Digits(individual_digits) then ByteLevel(regex).
    published = Tokenizer.from_str(bt.to_str())
    published.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    published.decoder = decoders.ByteLevel()
    cases = []
    for text in SMOLLM_CORPUS:
        c = case(tok, text)
        alt = published.encode(text, add_special_tokens=False).ids
        if alt != c["ids"]:
            print(f"note: smollm GGUF path and published tokenizer.json differ on {text!r}: {c['ids']} vs {alt}")
        cases.append(c)
    variants = {pre: pre_variant(pre, [c["text"] for c in cases]) for pre in ("llama-bpe", "qwen2")}
    meta = {
        "source": "transformers TokenizersBackend.from_pretrained(gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf)",
        "vocab_size": bt.get_vocab_size(with_added_tokens=True),
        "bos": tok.convert_tokens_to_ids(tok.bos_token),
        "eos": tok.convert_tokens_to_ids(tok.eos_token),
        "special_ids": sorted(i for i, t in bt.get_added_tokens_decoder().items() if t.special),
    }
    return {"meta": meta, "cases": cases, "pre_variants": variants}


def pre_variant(pre, texts):
    """HF ids for SmolLM2's vocabulary under another `tokenizer.ggml.pre` (its split regex).

    Exercises Kiln's Llama-3 / Qwen2 split patterns (fancy-regex) against HF's (Oniguruma).
    For the Llama-3 names Kiln sets BPE `ignore_merges` as Llama-3's tokenizer.json does;
    transformers' GGUF path does not, so the reference gets it set here too.
    """
    from gguf import GGUFReader, GGUFWriter

    r = GGUFReader(SMOLLM)
    f = lambda k: r.fields[f"tokenizer.ggml.{k}"].contents()  # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{pre}.gguf")
        w = GGUFWriter(path, "llama")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(f("tokens"))
        w.add_token_types(f("token_type"))
        w.add_token_merges(f("merges"))
        for key, add in [
            ("bos_token_id", w.add_bos_token_id),
            ("eos_token_id", w.add_eos_token_id),
            ("unknown_token_id", w.add_unk_token_id),
            ("padding_token_id", w.add_pad_token_id),
        ]:
            add(f(key))
        w.add_add_bos_token(False)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tok = hf_from_gguf(path)
    bt = tok.backend_tokenizer
    if pre in ("llama-bpe", "llama3", "llama-v3"):
        plain = [bt.encode(t, add_special_tokens=False).ids for t in texts]
        bt.model.ignore_merges = True
    out = [bt.encode(t, add_special_tokens=False).ids for t in texts]
    if pre in ("llama-bpe", "llama3", "llama-v3"):
        for t, a, b in zip(texts, plain, out):
            if a != b:
                print(f"note: ignore_merges changes {pre} ids for {t!r}: {a} -> {b}")
    return out


LLAMA_TRAIN = """The quick brown fox jumps over the lazy dog. A tokenizer splits text into pieces.
Kiln runs quantized transformer models on WebGPU, natively and in the browser.
Every decode step runs the same graph; the positions come from symbols.
def main():
    print("hello world")
    return 0
The weather today is sunny with a chance of rain in the afternoon.
Numbers like 12, 345 and 6789 are split into digits by the tokenizer.
She sells sea shells by the sea shore; the shells she sells are surely sea shells.
In the beginning there was the byte, and the byte was with the merge.
"""

LLAMA_CORPUS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "multiple   spaces",
    "tabs\tand\nnewlines\n",
    "   ",
    "12345 and 6789",
    'def main():\n    print("hello")',
    "你好，世界",
    "Grüße aus München",
    "Привет мир",
    "I ❤️ Rust 🦀",
    "👨\u200d👩\u200d👧 family",
    "🇯🇵",
    "<s>hello</s>",
    "a<tool>b <tool> c",
    "<unk> token",
    "e\u0301 combining",
    "naïve café",
    "\ufeffbom",
    "sea shells by the sea shore",
    "Unknownwordsgetsplitintopieces",
]


def llama_tiny():
    import io

    import sentencepiece as spm
    from gguf import GGUFWriter

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(LLAMA_TRAIN.splitlines() * 4),
        model_writer=model,
        model_type="bpe",
        vocab_size=420,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        user_defined_symbols=["<tool>"],
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    tokens, scores, types_ = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        # GGUF token types use sentencepiece's numbering: 1 normal 2 unknown 3 control 4 user 5 unused 6 byte
        t = 1
        if sp.is_unknown(i):
            t = 2
        elif sp.is_control(i):
            t = 3
        elif sp.is_unused(i):
            t = 5
        elif sp.is_byte(i):
            t = 6
        elif tokens[-1] == "<tool>":
            t = 4
        types_.append(t)

    spec = {
        "model": "llama",
        "pre": None,
        "tokens": tokens,
        "token_types": types_,
        "scores": scores,
        "merges": [],
        "bos": 1,
        "eos": 2,
        "unk": 0,
        "pad": None,
        "add_bos": True,
        "add_eos": False,
        "add_space_prefix": True,
    }
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "llama_tiny.gguf")
        w = GGUFWriter(path, "llama")
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types_)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_add_space_prefix(True)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tok = hf_from_gguf(path)
    cases = []
    for text in LLAMA_CORPUS:
        c = case(tok, text)
        sp_ids = sp.encode(text)
        if sp_ids != c["ids"]:
            print(f"note: sentencepiece itself and HF's GGUF conversion differ on {text!r}: {sp_ids} vs {c['ids']}")
        cases.append(c)
    bt = tok.backend_tokenizer
    meta = {
        "source": "sentencepiece BPE trained by tools/gen_tokenizer_fixtures.py; reference = transformers GGUF conversion",
        "vocab_size": bt.get_vocab_size(with_added_tokens=True),
        "special_ids": sorted(i for i, t in bt.get_added_tokens_decoder().items() if t.special),
    }
    return {"meta": meta, "spec": spec, "cases": cases}, bt.to_str()


def main():
    _install_reader_shim()
    os.makedirs(OUT, exist_ok=True)
    llama, llama_json = llama_tiny()
    with open(os.path.join(OUT, "llama_tiny.json"), "w", encoding="utf-8") as f:
        json.dump(llama, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(OUT, "llama_tiny.tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(llama_json)
    with open(os.path.join(OUT, "smollm2.json"), "w", encoding="utf-8") as f:
        json.dump(smollm2(), f, ensure_ascii=False, indent=0)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
