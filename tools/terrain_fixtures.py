#!/usr/bin/env python3
"""Deterministic test fixtures for the terrain consistency UNet (see docs/terrain-onnx.md).

How to run (from the repository root; needs numpy, onnx, onnxruntime -- e.g.
`python3 -m pip install --user numpy onnx onnxruntime`; versions used are recorded in
tests/fixtures/terrain/manifest.json):

    tools/fetch_terrain.sh                 # once: the real model into models/ (git-ignored)
    python3 tools/terrain_fixtures.py      # (re)writes tests/fixtures/terrain/
    python3 tools/terrain_fixtures.py --check-only   # verify only, write nothing

What it writes into tests/fixtures/terrain/ (all tensors f32 little-endian .bin, row-major,
each described -- shape, dtype, sha256, what it is -- by a JSON sidecar):

  real_reference.json + real/*.bin
      ONNX Runtime (CPU, 1 thread, graph optimizations disabled) outputs of the REAL model
      (sha256 95be54b4...) for batch 2: noise = default_rng(20261201).standard_normal((2,1,128,128),
      float32); sample 0: sigma 80.0, difficulty 10; sample 1: sigma 2.5, difficulty 75; the graph's
      `difficulty` input is the normalised label (d-1)/99. Inputs, the full output, the in-graph
      preconditioning scalars, and per-block intermediate activations of sample 0 (ONNX values
      exposed as extra graph outputs), named by guided-diffusion module path and ONNX value name.
      Activations at <=16x16 are stored whole; 32x32..128x128 ones as a strided slice plus
      statistics of the whole tensor.
  real_initializer_map.json
      Every initializer of the real file: name, shape, and for the anonymous GroupNorm affine
      parameters (`val_N`, [C,1,1]) the guided-diffusion parameter they are
      (e.g. network.input_blocks.1.0.in_layers.0.weight), found by tracing the graph.
  tiny_a.onnx, tiny_b.onnx + tiny_<name>.json + tiny_<name>/*.bin
      Random-weight models of the same family built by build_unet() below (same op types, node
      pattern, attributes and network.* initializer names as the real export), their
      guided-diffusion config, ORT outputs for a fixed batch-2 input, and every block's output.
  postprocess_reference.json
      Reference values for generator.py's pure helpers (model-space <-> heights, bilinear resize,
      tile starts, Hann blend window, strength -> sigma, difficulty label).
  manifest.json
      Files, sizes, sha256 and the tool versions.

Checks done on every run (results recorded in the JSON files; the run fails if one fails):
  * Builder faithfulness: build_unet(REAL_CONFIG) gives a graph whose node op-type SEQUENCE (not only
    multiset: 2103 nodes), node attributes, graph inputs/outputs, network.* initializer names and
    shapes, and anonymous-constant values are identical to the real file's, node by node; only the
    weights and the names of anonymous values (val_N, node names) differ. This holds
    (real_reference.json: "builder_faithfulness").
  * An independent float64 numpy implementation of the documented math (np_forward) matches ORT on
    the real model and on both tiny models (max abs differences recorded).
  * ORT with full graph optimizations (as generator.py runs it) vs the reference outputs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "terrain_consistency_unet_difficulty100.onnx"
MODEL_SHA = "95be54b4a39d58320e187a7ec533351c957f16a00be58773c86074828ee67887"
OUT = ROOT / "tests" / "fixtures" / "terrain"

# guided-diffusion UNetModel(...) keyword arguments, plus the keys this export adds.
REAL_CONFIG = {
    "image_size": [128, 128],          # [H, W] of `noisy` (static in the graph)
    "in_channels": 1,
    "out_channels": 1,
    "model_channels": 32,
    "channel_mult": [1, 1, 2, 3, 4],
    "num_res_blocks": 4,
    "attention_resolutions": [4, 8, 16],  # downsample factors ds (UNetModel ctor), i.e. 32,16,8 px
    "num_heads": -1,
    "num_head_channels": 32,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": True,
    "resblock_updown": True,
    "use_new_attention_order": True,    # QKVAttention: split q|k|v first, then heads
    "dropout": 0.0,
    "conv_resample": True,              # irrelevant: resblock_updown=True uses ResBlock up/down
    "use_checkpoint": False,
    "use_fp16": False,
    "num_classes": None,                # no nn.Embedding: label_emb is an MLP over a scalar
    # --- export-specific (not guided-diffusion ctor args) ---
    "time_embed_dim": 128,              # 4 * model_channels
    "label_emb": "mlp",                 # Linear(1, ted) -> SiLU -> Linear(ted, ted) on (d-1)/99
    "norm_num_groups": 32,              # GroupNorm32: 32 groups for every channel count
    "norm_eps": 1e-05,
    "timestep_max_period": 10000,
    "c_noise_scale": 250.0,             # c_noise = 250 * ln(sigma) = 1000 * 0.25 * ln(sigma)
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "sigma_data": 0.5,
    "output_clip": [-1.0, 1.0],
    "num_difficulties": 100,
}

TINY_CONFIGS = {
    # attention + resblock up/down, 2 levels, square
    "a": dict(REAL_CONFIG, image_size=[16, 16], model_channels=8, channel_mult=[1, 2],
              num_res_blocks=1, attention_resolutions=[2], num_head_channels=8,
              time_embed_dim=32, norm_num_groups=8),
    # 3 levels, 2 res blocks, attention at two resolutions (2 and 3 heads), non-square H != W
    "b": dict(REAL_CONFIG, image_size=[32, 16], model_channels=8, channel_mult=[1, 2, 3],
              num_res_blocks=2, attention_resolutions=[2, 4], num_head_channels=8,
              time_embed_dim=32, norm_num_groups=8),
}

NOISE_SEED = 20261201
SIGMAS = [80.0, 2.5]
DIFFICULTIES = [10, 75]


# ----------------------------------------------------------------------------------------------
# Builder: emits exactly the node pattern of the real torch.onnx (dynamo, opset 18) export.
# ----------------------------------------------------------------------------------------------
class _Builder:
    def __init__(self, cfg, rng):
        self.cfg = cfg
        self.rng = rng            # None: zero weights (shape-only build)
        self.nodes = []
        self.inits = []
        self.consts = {}
        self.cache = {}
        self.count = 0
        self.gn_params = {}       # anonymous initializer name -> guided-diffusion parameter name
        self.boundaries = {}      # module path -> value name
        self.emb_silu = None

    def fresh(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value, dtype):
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = self.fresh("val")
            self.inits.append(numpy_helper.from_array(arr, name))
            self.consts[key] = name
        return self.consts[key]

    def weight(self, name, shape, std, mean=0.0):
        if self.rng is None:
            arr = np.zeros(shape, np.float32)
        else:
            arr = (mean + std * self.rng.standard_normal(shape)).astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op, inputs, nout=1, base=None, **attrs):
        outs = [self.fresh(base or op.lower()) for _ in range(nout)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name="node_" + outs[0], **attrs))
        return outs[0] if nout == 1 else outs

    # -- layers ---------------------------------------------------------------------------------
    def conv(self, x, prefix, cin, cout, k, gain=1.0):
        w = self.weight(prefix + ".weight", (cout, cin, k, k), gain / math.sqrt(cin * k * k))
        b = self.weight(prefix + ".bias", (cout,), 0.05)
        p = k // 2
        return self.node("Conv", [x, w, b], base="conv2d", group=1, pads=[p, p, p, p],
                         auto_pad="NOTSET", strides=[1, 1], dilations=[1, 1])

    def gemm(self, x, prefix, fin, fout, gain=1.0):
        w = self.weight(prefix + ".weight", (fout, fin), gain / math.sqrt(fin))
        b = self.weight(prefix + ".bias", (fout,), 0.05)
        return self.node("Gemm", [x, w, b], base="linear", alpha=1.0, beta=1.0, transA=0, transB=1)

    def silu(self, x):
        s = self.node("Sigmoid", [x])
        return self.node("Mul", [x, s], base="silu")

    def group_norm(self, x, module, ch):
        g = self.cfg["norm_num_groups"]
        r = self.node("Reshape", [x, self.const([0, g, -1], np.int64)], allowzero=0)
        n = self.node("InstanceNormalization", [r, self.const(np.ones(g), np.float32),
                                                self.const(np.zeros(g), np.float32)],
                      epsilon=float(np.float32(self.cfg["norm_eps"])))
        s = self.node("Shape", [x], start=0)
        r2 = self.node("Reshape", [n, s], allowzero=0)
        gamma = self.weight(self.fresh("val"), (ch, 1, 1), 0.1, 1.0)
        beta = self.weight(self.fresh("val"), (ch, 1, 1), 0.1)
        self.gn_params[gamma] = module + ".weight"
        self.gn_params[beta] = module + ".bias"
        m = self.node("Mul", [r2, gamma])
        return self.node("Add", [m, beta], base="group_norm")

    def pool(self, x):
        return self.node("AveragePool", [x], base="avg_pool2d", count_include_pad=1, ceil_mode=0,
                         pads=[0, 0, 0, 0], auto_pad="NOTSET", strides=[2, 2], kernel_shape=[2, 2])

    def upsample(self, x):
        return self.node("Resize", [x, "", self.const([1, 1, 2, 2], np.float32)],
                         base="upsample_nearest2d", keep_aspect_ratio_policy="stretch", antialias=0,
                         extrapolation_value=0.0, exclude_outside=0, nearest_mode="floor",
                         coordinate_transformation_mode="asymmetric", cubic_coeff_a=-0.75,
                         mode="nearest")

    def unsqueeze(self, x, axes):
        return self.node("Unsqueeze", [x, self.const(axes, np.int64)])

    def resblock(self, x, prefix, cin, cout, up=False, down=False):
        h = self.silu(self.group_norm(x, prefix + ".in_layers.0", cin))
        if down:
            h, x = self.pool(h), self.pool(x)
        if up:
            h, x = self.upsample(h), self.upsample(x)
        h = self.conv(h, prefix + ".in_layers.2", cin, cout, 3)
        if self.emb_silu is None:
            self.emb_silu = self.silu(self.emb)
        e = self.gemm(self.emb_silu, prefix + ".emb_layers.1", self.cfg["time_embed_dim"], 2 * cout)
        scale, shift = self.node("Split", [self.unsqueeze(e, [2, 3])], nout=2, base="split",
                                 axis=1, num_outputs=2)
        h = self.group_norm(h, prefix + ".out_layers.0", cout)
        h = self.node("Mul", [h, self.node("Add", [scale, self.const(1.0, np.float32)])])
        h = self.node("Add", [h, shift])
        h = self.conv(self.silu(h), prefix + ".out_layers.3", cout, cout, 3, gain=0.5)
        if cin != cout:
            x = self.conv(x, prefix + ".skip_connection", cin, cout, 1, gain=0.5)
        return self.node("Add", [x, h])

    def cached(self, key, fn):
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]

    def attention(self, x, prefix, ch, hw):
        hc = self.cfg["num_head_channels"]
        heads = ch // hc if hc != -1 else self.cfg["num_heads"]
        hc = ch // heads
        t = hw[0] * hw[1]
        i64 = np.int64
        h = self.group_norm(x, prefix + ".norm", ch)
        qkv = self.conv(h, prefix + ".qkv", ch, 3 * ch, 1)
        bt = self.cached(("bt", t), lambda: self.node(
            "Concat", [self.batch, self.const([-1], i64), self.const([t], i64)], axis=0))
        view = self.node("Reshape", [qkv, bt], base="view", allowzero=1)
        q, k, v = self.node("Split", [view], nout=3, base="split", axis=1, num_outputs=3)
        scale = self.const(1.0 / math.sqrt(math.sqrt(hc)), np.float32)
        q = self.node("Mul", [q, scale])
        bh = self.cached(("bh", heads), lambda: self.node("Reshape", [
            self.node("Mul", [self.batch_scalar, self.const(heads, i64)]),
            self.const([-1], i64)], allowzero=0))
        qshape = self.cached(("q", heads, hc, t), lambda: self.node(
            "Concat", [bh, self.const([hc], i64), self.const([t], i64)], axis=0))
        q = self.node("Reshape", [q, qshape], base="view", allowzero=1)
        k = self.node("Mul", [k, scale])
        kshape = self.cached(("k", heads, hc), lambda: self.node(
            "Concat", [bh, self.const([hc], i64), self.const([-1], i64)], axis=0))
        k = self.node("Reshape", [k, kshape], base="view", allowzero=1)
        w = self.node("Softmax", [self.node("Einsum", [q, k], equation="bct,bcs->bts")], axis=-1)
        v = self.node("Reshape", [v, qshape], base="view", allowzero=1)
        a = self.node("Einsum", [w, v], equation="bts,bcs->bct")
        a = self.node("Reshape", [a, bt], base="view", allowzero=1)
        hwshape = self.cached(("hw", hw), lambda: self.node(
            "Concat", [self.batch, self.const([-1], i64), self.const([hw[0]], i64),
                       self.const([hw[1]], i64)], axis=0))
        a = self.node("Reshape", [a, hwshape], base="view", allowzero=1)
        return self.node("Add", [x, self.conv(a, prefix + ".proj_out", ch, ch, 1, gain=0.5)])

    # -- model ----------------------------------------------------------------------------------
    def build(self):
        c = self.cfg
        mc, ted = c["model_channels"], c["time_embed_dim"]
        f32 = np.float32
        # batch size for the attention reshapes (the middle block always has attention)
        self.batch = self.node("Shape", ["difficulty"], start=0, end=1)
        self.batch_scalar = self.node("Squeeze", [self.batch])
        smin, sdata = c["sigma_min"], c["sigma_data"]
        sub = self.node("Sub", ["sigma", self.const(smin, f32)])
        two = self.const(2.0, f32)
        sd2 = self.const(sdata * sdata, f32)
        c_skip = self.node("Mul", [self.node("Reciprocal", [self.node("Add", [
            self.node("Pow", [sub, two]), sd2])]), sd2])
        num = self.node("Mul", [sub, self.const(sdata, f32)])
        sq = self.node("Sqrt", [self.node("Add", [self.node("Pow", ["sigma", two]), sd2])])
        c_out = self.node("Div", [num, sq])
        c_in = self.node("Reciprocal", [sq])
        x = self.node("Mul", [self.unsqueeze(self.unsqueeze(c_in, [1, 2]), [3]), "noisy"])
        self.boundaries["c_in*noisy"] = x
        # timestep embedding of c_noise = 250*ln(sigma): [cos | sin], dim = model_channels
        half = mc // 2
        freqs = np.exp(-math.log(c["timestep_max_period"]) * np.arange(half, dtype=np.float32)
                       / half).reshape(1, half)
        t = self.node("Mul", [self.node("Log", ["sigma"]), self.const(c["c_noise_scale"], f32)])
        self.boundaries["c_noise"] = t
        args = self.node("Mul", [self.unsqueeze(t, [1]), self.const(freqs, f32)])
        temb = self.node("Concat", [self.node("Cos", [args]), self.node("Sin", [args])], axis=-1)
        self.boundaries["timestep_embedding"] = temb
        te = self.gemm(self.silu(self.gemm(temb, "network.time_embed.0", mc, ted)),
                       "network.time_embed.2", ted, ted)
        self.boundaries["time_embed"] = te
        le = self.gemm(self.silu(self.gemm(self.unsqueeze("difficulty", [1]),
                                           "network.label_emb.0", 1, ted)),
                       "network.label_emb.2", ted, ted)
        self.boundaries["label_emb"] = le
        self.emb = self.node("Add", [te, le])
        self.boundaries["emb"] = self.emb

        hw = tuple(c["image_size"])
        h = self.conv(x, "network.input_blocks.0.0", c["in_channels"], mc, 3)
        self.boundaries["input_blocks.0"] = h
        hs, chans = [h], [mc]
        ch, ds, idx = mc, 1, 1
        attn = set(c["attention_resolutions"])
        for level, mult in enumerate(c["channel_mult"]):
            for _ in range(c["num_res_blocks"]):
                p = f"network.input_blocks.{idx}"
                h = self.resblock(h, p + ".0", ch, mult * mc)
                ch = mult * mc
                if ds in attn:
                    h = self.attention(h, p + ".1", ch, hw)
                self.boundaries[f"input_blocks.{idx}"] = h
                hs.append(h), chans.append(ch)
                idx += 1
            if level != len(c["channel_mult"]) - 1:
                h = self.resblock(h, f"network.input_blocks.{idx}.0", ch, ch, down=True)
                self.boundaries[f"input_blocks.{idx}"] = h
                hs.append(h), chans.append(ch)
                idx += 1
                ds *= 2
                hw = (hw[0] // 2, hw[1] // 2)
        h = self.resblock(h, "network.middle_block.0", ch, ch)
        h = self.attention(h, "network.middle_block.1", ch, hw)
        h = self.resblock(h, "network.middle_block.2", ch, ch)
        self.boundaries["middle_block"] = h
        idx = 0
        for level, mult in list(enumerate(c["channel_mult"]))[::-1]:
            for i in range(c["num_res_blocks"] + 1):
                p = f"network.output_blocks.{idx}"
                skip, ich = hs.pop(), chans.pop()
                h = self.node("Concat", [h, skip], base="cat", axis=1)
                h = self.resblock(h, p + ".0", ch + ich, mc * mult)
                ch = mc * mult
                sub_i = 1
                if ds in attn:
                    h = self.attention(h, p + ".1", ch, hw)
                    sub_i = 2
                if level and i == c["num_res_blocks"]:
                    h = self.resblock(h, f"{p}.{sub_i}", ch, ch, up=True)
                    ds //= 2
                    hw = (hw[0] * 2, hw[1] * 2)
                self.boundaries[f"output_blocks.{idx}"] = h
                idx += 1
        h = self.silu(self.group_norm(h, "network.out.0", ch))
        self.boundaries["out.1"] = h
        f = self.conv(h, "network.out.2", mc, c["out_channels"], 3, gain=0.5)
        self.boundaries["out.2"] = f
        y = self.node("Add", [
            self.node("Mul", [self.unsqueeze(self.unsqueeze(c_out, [1, 2]), [3]), f]),
            self.node("Mul", [self.unsqueeze(self.unsqueeze(c_skip, [1, 2]), [3]), "noisy"])])
        lo, hi = c["output_clip"]
        self.nodes.append(helper.make_node(
            "Clip", [y, self.const(lo, f32), self.const(hi, f32)], ["denoised"],
            name="node_Clip_denoised"))
        self.boundaries["denoised"] = "denoised"
        self.boundaries["c_skip"], self.boundaries["c_out"], self.boundaries["c_in"] = \
            c_skip, c_out, c_in

        H, W = c["image_size"]
        inputs = [
            helper.make_tensor_value_info("noisy", TensorProto.FLOAT, ["batch", c["in_channels"], H, W]),
            helper.make_tensor_value_info("sigma", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("difficulty", TensorProto.FLOAT, ["batch"]),
        ]
        outputs = [helper.make_tensor_value_info("denoised", TensorProto.FLOAT,
                                                 ["batch", c["out_channels"], H, W])]
        graph = helper.make_graph(self.nodes, "main_graph", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                                  producer_name="kiln tools/terrain_fixtures.py")
        model.ir_version = 10
        helper.set_model_props(model, {"architecture": "consistency-unet-tiny",
                                       "config": json.dumps(c, sort_keys=True)})
        return model


def build_unet(cfg, seed=None):
    """Returns (ModelProto, gn_params, boundaries). seed=None builds zero weights (shapes only)."""
    b = _Builder(cfg, None if seed is None else np.random.default_rng(seed))
    model = b.build()
    onnx.checker.check_model(model)
    return model, b.gn_params, b.boundaries


# ----------------------------------------------------------------------------------------------
# Graph helpers
# ----------------------------------------------------------------------------------------------
def _attrs(node):
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) or
                                                                type(v).__name__.startswith("Repeated") else v)
    return out


def trace_groupnorm_params(model):
    """Maps each anonymous GroupNorm affine initializer to its guided-diffusion parameter by
    following the graph: InstanceNormalization -> Reshape -> Mul(gamma) -> Add(beta) -> ... -> first
    Conv with a network.* weight (in_layers.2 / out_layers.3 / qkv / out.2)."""
    g = model.graph
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {t.name for t in g.initializer}
    suffix = {"in_layers.2": "in_layers.0", "out_layers.3": "out_layers.0", "qkv": "norm", "out.2": "out.0"}
    result, order = {}, []
    for n in g.node:
        if n.op_type != "InstanceNormalization":
            continue
        (r2,) = consumers[n.output[0]]
        (mul,) = consumers[r2.output[0]]
        (add,) = consumers[mul.output[0]]
        gamma = [i for i in mul.input if i in inits][0]
        beta = [i for i in add.input if i in inits][0]
        frontier, seen, module = [add.output[0]], set(), None
        while frontier and module is None:
            nxt = []
            for v in frontier:
                for c in consumers.get(v, []):
                    if c.name in seen:
                        continue
                    seen.add(c.name)
                    if c.op_type == "Conv" and c.input[1].startswith("network."):
                        base = c.input[1][: -len(".weight")]
                        for k, s in suffix.items():
                            if base.endswith(k):
                                module = base[: -len(k)] + s
                        if module is None:
                            raise RuntimeError(f"unexpected conv after GroupNorm: {base}")
                        break
                    nxt.extend(c.output)
                if module:
                    break
            frontier = nxt
        result[gamma] = module + ".weight"
        result[beta] = module + ".bias"
        order.append(module)
    return result, order


def load_params(model, gn_map):
    """guided-diffusion parameter name -> float64 array (GroupNorm gamma/beta as [C])."""
    P = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t).astype(np.float64)
        if t.name.startswith("network."):
            P[t.name] = a
        elif t.name in gn_map:
            P[gn_map[t.name]] = a.reshape(-1)
    return P


def compare_structure(real, built):
    """Node-by-node comparison of a builder graph with the real file (weights and anonymous names
    aside). Returns a dict of findings; 'identical' is True when everything matches."""
    rg, bg = real.graph, built.graph
    rinit = {t.name: t for t in rg.initializer}
    binit = {t.name: t for t in bg.initializer}
    res = {}
    res["node_count"] = [len(rg.node), len(bg.node)]
    res["op_sequence_equal"] = [n.op_type for n in rg.node] == [n.op_type for n in bg.node]
    from collections import Counter
    res["op_multiset_equal"] = Counter(n.op_type for n in rg.node) == Counter(n.op_type for n in bg.node)
    net_r = {k: list(v.dims) for k, v in rinit.items() if k.startswith("network.")}
    net_b = {k: list(v.dims) for k, v in binit.items() if k.startswith("network.")}
    res["network_initializers_equal"] = net_r == net_b
    res["network_initializer_count"] = len(net_r)
    res["initializer_count"] = [len(rinit), len(binit)]
    # node by node: attributes, and each input's role (graph input / network.* name / constant
    # value / anonymous weight shape / produced by node #j output #k)
    def roles(g, inits, gn_names):
        prod = {}
        for j, n in enumerate(g.node):
            for k, o in enumerate(n.output):
                prod[o] = (j, k)
        gi = {i.name for i in g.input}
        out = []
        for n in g.node:
            r = []
            for i in n.input:
                if i == "" or i in gi:
                    r.append(("in", i))
                elif i.startswith("network."):
                    r.append(("param", i))
                elif i in gn_names:
                    r.append(("gn", tuple(inits[i].dims)))
                elif i in inits:
                    a = numpy_helper.to_array(inits[i])
                    r.append(("const", a.dtype.str, a.shape, a.tobytes()))
                else:
                    r.append(("node", prod[i]))
            out.append((n.op_type, json.dumps(_attrs(n), sort_keys=True, default=str), tuple(r)))
        return out
    rgn, _ = trace_groupnorm_params(real)
    bgn, _ = trace_groupnorm_params(built)
    rr, br = roles(rg, rinit, rgn), roles(bg, binit, bgn)
    diffs = [j for j, (a, b) in enumerate(zip(rr, br)) if a != b]
    res["nodes_differing"] = len(diffs) + abs(len(rr) - len(br))
    res["first_differing_node"] = (rg.node[diffs[0]].name if diffs else None)
    res["groupnorm_modules_equal"] = trace_groupnorm_params(real)[1] == trace_groupnorm_params(built)[1]
    io = lambda vs: [(v.name, str(v.type)) for v in vs]
    res["graph_io_equal"] = io(rg.input) == io(bg.input) and io(rg.output) == io(bg.output)
    res["identical"] = all([res["op_sequence_equal"], res["network_initializers_equal"],
                            res["nodes_differing"] == 0, res["groupnorm_modules_equal"],
                            res["graph_io_equal"], res["initializer_count"][0] == res["initializer_count"][1]])
    return res


# ----------------------------------------------------------------------------------------------
# Independent float64 numpy implementation of the documented math
# ----------------------------------------------------------------------------------------------
def _conv(x, w, b):
    if w.shape[2] == 1:
        return np.einsum("bchw,oc->bohw", x, w[:, :, 0, 0]) + b[None, :, None, None]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # B,C,H,W,3,3
    out = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))  # B,H,W,O
    return out.transpose(0, 3, 1, 2) + b[None, :, None, None]


def np_forward(cfg, P, noisy, sigma, label):
    f = np.float64
    x0, s, d = noisy.astype(f), sigma.astype(f), label.astype(f)
    smin, sd = cfg["sigma_min"], cfg["sigma_data"]
    G, eps = cfg["norm_num_groups"], cfg["norm_eps"]
    rec = {}
    c_skip = sd ** 2 / ((s - smin) ** 2 + sd ** 2)
    c_out = (s - smin) * sd / np.sqrt(s ** 2 + sd ** 2)
    c_in = 1.0 / np.sqrt(s ** 2 + sd ** 2)
    rec.update(c_skip=c_skip, c_out=c_out, c_in=c_in)
    c_noise = cfg["c_noise_scale"] * np.log(s)
    rec["c_noise"] = c_noise
    mc = cfg["model_channels"]
    half = mc // 2
    freqs = np.exp(-math.log(cfg["timestep_max_period"]) * np.arange(half) / half)
    a = c_noise[:, None] * freqs[None]
    temb = np.concatenate([np.cos(a), np.sin(a)], axis=1)
    rec["timestep_embedding"] = temb
    lin = lambda v, p: v @ P[p + ".weight"].T + P[p + ".bias"]
    silu = lambda v: v * 0.5 * (1.0 + np.tanh(0.5 * v))  # = v * sigmoid(v), overflow-free
    te = lin(silu(lin(temb, "network.time_embed.0")), "network.time_embed.2")
    le = lin(silu(lin(d[:, None], "network.label_emb.0")), "network.label_emb.2")
    emb = te + le
    rec.update(time_embed=te, label_emb=le, emb=emb)
    es = silu(emb)

    def gn(v, p):
        B, C = v.shape[:2]
        r = v.reshape(B, G, -1)
        r = (r - r.mean(-1, keepdims=True)) / np.sqrt(r.var(-1, keepdims=True) + eps)
        return r.reshape(v.shape) * P[p + ".weight"][None, :, None, None] + P[p + ".bias"][None, :, None, None]

    conv = lambda v, p: _conv(v, P[p + ".weight"], P[p + ".bias"])
    pool = lambda v: v.reshape(v.shape[0], v.shape[1], v.shape[2] // 2, 2, v.shape[3] // 2, 2).mean((3, 5))
    up = lambda v: v.repeat(2, axis=2).repeat(2, axis=3)

    def res(v, p, updown=None):
        h = silu(gn(v, p + ".in_layers.0"))
        if updown == "down":
            h, v = pool(h), pool(v)
        elif updown == "up":
            h, v = up(h), up(v)
        h = conv(h, p + ".in_layers.2")
        e = lin(es, p + ".emb_layers.1")
        C = e.shape[1] // 2
        scale, shift = e[:, :C, None, None], e[:, C:, None, None]
        h = gn(h, p + ".out_layers.0") * (1 + scale) + shift
        h = conv(silu(h), p + ".out_layers.3")
        if p + ".skip_connection.weight" in P:
            v = conv(v, p + ".skip_connection")
        return v + h

    def attn(v, p):
        B, C, H, W = v.shape
        hc = cfg["num_head_channels"]
        nh = C // hc
        T = H * W
        qkv = conv(gn(v, p + ".norm"), p + ".qkv").reshape(B, 3 * C, T)
        q, k, vv = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        sc = 1.0 / math.sqrt(math.sqrt(hc))
        q = (q * sc).reshape(B * nh, hc, T)
        k = (k * sc).reshape(B * nh, hc, T)
        vv = vv.reshape(B * nh, hc, T)
        w = np.einsum("bct,bcs->bts", q, k)
        w = np.exp(w - w.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        o = np.einsum("bts,bcs->bct", w, vv).reshape(B, C, H, W)
        return v + conv(o, p + ".proj_out")

    x = c_in[:, None, None, None] * x0
    h = conv(x, "network.input_blocks.0.0")
    rec["input_blocks.0"] = h
    hs = [h]
    ds, idx, nlev = 1, 1, len(cfg["channel_mult"])
    attn_ds = set(cfg["attention_resolutions"])
    for level in range(nlev):
        for _ in range(cfg["num_res_blocks"]):
            p = f"network.input_blocks.{idx}"
            h = res(h, p + ".0")
            if ds in attn_ds:
                h = attn(h, p + ".1")
            rec[f"input_blocks.{idx}"] = h
            hs.append(h)
            idx += 1
        if level != nlev - 1:
            h = res(h, f"network.input_blocks.{idx}.0", "down")
            rec[f"input_blocks.{idx}"] = h
            hs.append(h)
            idx += 1
            ds *= 2
    h = res(h, "network.middle_block.0")
    h = attn(h, "network.middle_block.1")
    h = res(h, "network.middle_block.2")
    rec["middle_block"] = h
    idx = 0
    for level in range(nlev - 1, -1, -1):
        for i in range(cfg["num_res_blocks"] + 1):
            p = f"network.output_blocks.{idx}"
            h = res(np.concatenate([h, hs.pop()], axis=1), p + ".0")
            sub = 1
            if ds in attn_ds:
                h = attn(h, p + ".1")
                sub = 2
            if level and i == cfg["num_res_blocks"]:
                h = res(h, f"{p}.{sub}", "up")
                ds //= 2
            rec[f"output_blocks.{idx}"] = h
            idx += 1
    h = silu(gn(h, "network.out.0"))
    rec["out.1"] = h
    F = conv(h, "network.out.2")
    rec["out.2"] = F
    y = c_out[:, None, None, None] * F + c_skip[:, None, None, None] * x0
    rec["denoised"] = np.clip(y, *cfg["output_clip"])
    return rec


# ----------------------------------------------------------------------------------------------
# ORT
# ----------------------------------------------------------------------------------------------
def ort_run(model, feeds, extra=(), optimize=False):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in extra:
        if name not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def sha(b):
    return hashlib.sha256(b).hexdigest()


def stats(a):
    a = np.asarray(a, np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "max": float(a.max()), "mean_abs": float(np.abs(a).mean())}


class Writer:
    def __init__(self, root, dry):
        self.root, self.dry, self.files = root, dry, {}

    def bin(self, rel, arr):
        arr = np.ascontiguousarray(arr, dtype="<f4")
        data = arr.tobytes()
        if not self.dry:
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        self.files[rel] = (len(data), sha(data))
        return {"file": rel, "shape": list(arr.shape), "dtype": "f32le", "sha256": sha(data)}

    def raw(self, rel, data):
        if isinstance(data, str):
            data = data.encode()
        if not self.dry:
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        self.files[rel] = (len(data), sha(data))

    def json(self, rel, obj):
        self.raw(rel, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def labels_of(difficulties, n=100):
    return ((np.asarray(difficulties, np.int64) - 1) / (n - 1)).astype(np.float32)


def fixed_inputs(cfg, seed):
    H, W = cfg["image_size"]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((2, cfg["in_channels"], H, W), dtype=np.float32)
    sig = np.asarray(SIGMAS, np.float32)
    noisy = (noise * sig[:, None, None, None]).astype(np.float32)
    return {"noisy": noisy, "sigma": sig, "difficulty": labels_of(DIFFICULTIES)}


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# Which real-model boundaries to store, and how (sample 0 only)
REAL_BOUNDARIES = [
    # (module path, store): "full" or an int stride for the spatial dims
    ("timestep_embedding", "full"), ("time_embed", "full"), ("label_emb", "full"), ("emb", "full"),
    ("input_blocks.0", 8), ("input_blocks.4", 8), ("input_blocks.5", 4), ("input_blocks.9", 4),
    ("input_blocks.14", 2), ("input_blocks.19", "full"), ("input_blocks.24", "full"),
    ("middle_block", "full"), ("output_blocks.4", "full"), ("output_blocks.9", 2),
    ("output_blocks.14", 4), ("output_blocks.19", 8), ("output_blocks.24", 8),
    ("out.1", 8), ("out.2", "full"),
]


def real_fixtures(w, report):
    real = onnx.load(str(MODEL))
    built, bgn, bnd = build_unet(REAL_CONFIG)
    faith = compare_structure(real, built)
    report["real_builder_faithfulness"] = faith
    if not faith["identical"]:
        raise SystemExit(f"builder is not faithful to the real export: {faith}")
    # value names of the real graph via node position (the op sequences are identical)
    pos = {}
    for j, n in enumerate(built.graph.node):
        for k, o in enumerate(n.output):
            pos[o] = (j, k)
    real_name = {m: real.graph.node[pos[v][0]].output[pos[v][1]] for m, v in bnd.items()}
    gn_map, gn_order = trace_groupnorm_params(real)
    # cross-check with the exporter's own record (value_info metadata of the folded constants)
    folded = {}
    for v in real.graph.value_info:
        for p in v.metadata_props:
            if p.key == "pkg.onnxscript.optimizer.folded_from":
                folded[v.name] = p.value.strip("[]").split(",")[0].strip().strip("'")
    faith["groupnorm_map_matches_exporter_metadata"] = all(folded.get(k) == v for k, v in gn_map.items())
    if not faith["groupnorm_map_matches_exporter_metadata"]:
        raise SystemExit("GroupNorm tracing disagrees with the exporter's folded_from metadata")

    # initializer map
    imap = []
    for t in real.graph.initializer:
        e = {"name": t.name, "shape": list(t.dims),
             "dtype": TensorProto.DataType.Name(t.data_type).lower()}
        if t.name in gn_map:
            e["param"] = gn_map[t.name]
        elif not t.name.startswith("network."):
            a = numpy_helper.to_array(t)
            e["constant"] = a.tolist() if a.size <= 32 else f"<{a.size} values>"
        imap.append(e)
    w.json("real_initializer_map.json", {
        "model_sha256": MODEL_SHA,
        "note": "All 815 initializers in file order. network.* are named like the PyTorch "
                "guided-diffusion state dict. GroupNorm affine parameters are anonymous val_N "
                "[C,1,1] tensors (multiplied/added right after InstanceNormalization+Reshape); "
                "'param' gives the state-dict name found by tracing the graph "
                "(tools/terrain_fixtures.py trace_groupnorm_params). Other val_N are constants.",
        "groupnorm_order": gn_order,
        "initializers": imap})

    feeds = fixed_inputs(REAL_CONFIG, NOISE_SEED)
    extra = [real_name[m] for m, _ in REAL_BOUNDARIES] + \
        [real_name[k] for k in ("c_skip", "c_out", "c_in", "c_noise")]
    outs = ort_run(real, feeds, extra)
    opt = ort_run(real, feeds, optimize=True)["denoised"]
    P = load_params(real, gn_map)
    ref = np_forward(REAL_CONFIG, P, feeds["noisy"], feeds["sigma"], feeds["difficulty"])

    j = {
        "what": "ONNX Runtime CPU reference for the real terrain consistency UNet",
        "model": "models/terrain_consistency_unet_difficulty100.onnx (tools/fetch_terrain.sh)",
        "model_sha256": MODEL_SHA,
        "ort": {"version": ort.__version__, "provider": "CPUExecutionProvider",
                "graph_optimization_level": "ORT_DISABLE_ALL", "threads": 1},
        "inputs_recipe": f"noise = np.random.default_rng({NOISE_SEED}).standard_normal((2,1,128,128), "
                         f"dtype=np.float32); noisy = noise * sigma[:,None,None,None]; "
                         f"difficulty input = (d-1)/99 as float32",
        "sigma": SIGMAS, "difficulty_displayed": DIFFICULTIES,
        "difficulty_input": [float(v) for v in feeds["difficulty"]],
        "config": REAL_CONFIG,
        "builder_faithfulness": faith,
        "inputs": {k: w.bin(f"real/{k}.bin", v) for k, v in feeds.items()},
        "outputs": {"denoised": w.bin("real/denoised.bin", outs["denoised"])},
        "preconditioning": {k: {"onnx_value": real_name[k],
                                "values": [float(v) for v in outs[real_name[k]]]}
                            for k in ("c_skip", "c_out", "c_in", "c_noise")},
        "checks": {},
        "intermediates_note": "batch index 0 only (sigma 80, difficulty 10). 'stride': s means "
                              "the stored array is act[0, :, ::s, ::s] (NCHW, N=1 kept); 'stats' are "
                              "of the whole act[0] tensor. 'full' tensors are act[0:1].",
        "intermediates": [],
    }
    j["outputs"]["denoised"]["stats"] = stats(outs["denoised"])
    checks = j["checks"]
    checks["ort_vs_numpy_f64_denoised_max_abs"] = maxdiff(outs["denoised"], ref["denoised"])
    checks["ort_optimized_vs_reference_denoised_max_abs"] = maxdiff(opt, outs["denoised"])
    checks["clipped_fraction"] = float(np.mean(np.abs(outs["denoised"]) >= 1.0))
    for k in ("c_skip", "c_out", "c_in", "c_noise"):
        checks[f"{k}_ort_vs_numpy_max_abs"] = maxdiff(outs[real_name[k]], ref[k])
    for m, store in REAL_BOUNDARIES:
        a = outs[real_name[m]][0:1]
        e = {"module": m, "onnx_value": real_name[m], "full_shape": list(a.shape),
             "stats": stats(a), "ort_vs_numpy_f64_max_abs": maxdiff(a, ref[m][0:1])}
        if store == "full":
            e.update(w.bin(f"real/{m}.bin", a))
            e["stride"] = 1
        else:
            e.update(w.bin(f"real/{m}.s{store}.bin", a[:, :, ::store, ::store]))
            e["stride"] = store
        j["intermediates"].append(e)
    worst = max(e["ort_vs_numpy_f64_max_abs"] / max(e["stats"]["mean_abs"], 1e-6) for e in j["intermediates"])
    checks["worst_intermediate_maxabs_over_meanabs"] = worst
    if checks["ort_vs_numpy_f64_denoised_max_abs"] > 1e-3 or worst > 1e-3:
        raise SystemExit(f"numpy reference disagrees with ORT on the real model: {checks}")
    w.json("real_reference.json", j)
    report["real_checks"] = checks
    return outs["denoised"]


def tiny_fixtures(w, name, cfg, seed, report):
    model, gn, bnd = build_unet(cfg, seed)
    data = model.SerializeToString()
    w.raw(f"tiny_{name}.onnx", data)
    feeds = fixed_inputs(cfg, NOISE_SEED + 1)
    mods = [m for m in bnd if m not in ("c_skip", "c_out", "c_in", "c_noise", "c_in*noisy", "denoised")]
    outs = ort_run(model, feeds, [bnd[m] for m in mods] + [bnd[k] for k in ("c_skip", "c_out", "c_in", "c_noise")])
    opt = ort_run(model, feeds, optimize=True)["denoised"]
    P = load_params(model, gn)
    ref = np_forward(cfg, P, feeds["noisy"], feeds["sigma"], feeds["difficulty"])
    from collections import Counter
    nparams = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                  if t.name.startswith("network.") or t.name in gn)
    j = {
        "what": f"tiny random-weight model of the terrain UNet family (config '{name}')",
        "model_file": f"tiny_{name}.onnx", "model_sha256": sha(data), "weight_seed": seed,
        "weights": "N(0, (gain/sqrt(fan_in))^2), gain 1 (0.5 for out_layers.3, skip_connection, "
                   "proj_out, out.2); biases N(0, 0.05^2); GroupNorm gamma N(1, 0.1^2), beta N(0, 0.1^2)",
        "config": cfg,
        "parameters": nparams,
        "op_counts": dict(sorted(Counter(n.op_type for n in model.graph.node).items())),
        "inputs_recipe": f"noise = np.random.default_rng({NOISE_SEED + 1}).standard_normal((2,{cfg['in_channels']},"
                         f"{cfg['image_size'][0]},{cfg['image_size'][1]}), dtype=np.float32); "
                         f"noisy = noise * sigma[:,None,None,None]; difficulty input = (d-1)/99",
        "sigma": SIGMAS, "difficulty_displayed": DIFFICULTIES,
        "ort": {"version": ort.__version__, "graph_optimization_level": "ORT_DISABLE_ALL", "threads": 1},
        "groupnorm_params": gn,
        "inputs": {k: w.bin(f"tiny_{name}/{k}.bin", v) for k, v in feeds.items()},
        "outputs": {"denoised": w.bin(f"tiny_{name}/denoised.bin", outs["denoised"])},
        "preconditioning": {k: {"onnx_value": bnd[k], "values": [float(v) for v in outs[bnd[k]]]}
                            for k in ("c_skip", "c_out", "c_in", "c_noise")},
        "intermediates_note": "every block output, both samples (full batch), NCHW",
        "intermediates": [],
        "checks": {},
    }
    j["outputs"]["denoised"]["stats"] = stats(outs["denoised"])
    for m in mods:
        a = outs[bnd[m]]
        e = {"module": m, "onnx_value": bnd[m]}
        e.update(w.bin(f"tiny_{name}/{m}.bin", a))
        e["stats"] = stats(a)
        e["ort_vs_numpy_f64_max_abs"] = maxdiff(a, ref[m])
        j["intermediates"].append(e)
    ch = j["checks"]
    ch["ort_vs_numpy_f64_denoised_max_abs"] = maxdiff(outs["denoised"], ref["denoised"])
    ch["ort_optimized_vs_reference_denoised_max_abs"] = maxdiff(opt, outs["denoised"])
    ch["clipped_fraction"] = float(np.mean(np.abs(outs["denoised"]) >= 1.0))
    ch["worst_intermediate_max_abs"] = max(e["ort_vs_numpy_f64_max_abs"] for e in j["intermediates"])
    if ch["ort_vs_numpy_f64_denoised_max_abs"] > 1e-4 or ch["worst_intermediate_max_abs"] > 1e-3:
        raise SystemExit(f"numpy reference disagrees with ORT on tiny_{name}: {ch}")
    w.json(f"tiny_{name}.json", j)
    report[f"tiny_{name}_checks"] = ch


def postprocess_fixtures(w, real_outputs):
    """Pure helpers of terrain_diffusion/generator.py 0.4.2, re-implemented verbatim (numpy)."""
    height_range, asinh_scale = 22.16864013671875, 0.1
    norm = np.arcsinh(height_range / asinh_scale)

    def from_model(values, zero_floor):
        values = np.asarray(values, np.float32)
        unit = np.clip((values + 1.0) * 0.5, 0.0, 1.0)
        h = asinh_scale * np.sinh(unit * norm)
        h = np.clip(h, 0.0, height_range).astype(np.float32)
        if zero_floor:
            h -= h.min(axis=(-2, -1), keepdims=True)
        return h

    def to_model(t):
        v = np.asarray(t, np.float32)
        v = v - v.min(axis=(-2, -1), keepdims=True)
        v = np.clip(v, 0.0, height_range)
        return (np.arcsinh(v / asinh_scale) / norm * 2.0 - 1.0).astype(np.float32)

    def resize(values, shape):
        values = np.asarray(values, np.float32)
        ih, iw = values.shape[-2:]
        oh, ow = shape
        x = (np.arange(ow, dtype=np.float32) + 0.5) * iw / ow - 0.5
        x = np.clip(x, 0, iw - 1)
        x0 = np.floor(x).astype(np.intp)
        x1 = np.minimum(x0 + 1, iw - 1)
        wx = (x - x0).reshape((1,) * (values.ndim - 1) + (ow,))
        hor = values[..., x0] * (1.0 - wx) + values[..., x1] * wx
        y = (np.arange(oh, dtype=np.float32) + 0.5) * ih / oh - 0.5
        y = np.clip(y, 0, ih - 1)
        y0 = np.floor(y).astype(np.intp)
        y1 = np.minimum(y0 + 1, ih - 1)
        wy = (y - y0).reshape((1,) * (values.ndim - 2) + (oh, 1))
        return (hor[..., y0, :] * (1.0 - wy) + hor[..., y1, :] * wy).astype(np.float32)

    def tile_starts(length, tile=128, overlap=32):
        if length <= tile:
            return [0]
        starts = list(range(0, length - tile + 1, tile - overlap))
        if starts[-1] != length - tile:
            starts.append(length - tile)
        return starts

    synth = np.linspace(-3.0, 30.0, 6 * 8, dtype=np.float32).reshape(6, 8)
    synth[2, 3] = 100.0
    heights = from_model(real_outputs[:, 0], zero_floor=True)
    blend_1d = np.maximum(np.hanning(128).astype(np.float32), 1.0e-3)
    j = {
        "what": "reference values for terrain_diffusion/generator.py 0.4.2 helpers (see docs/terrain-onnx.md)",
        "constants": {"height_range": height_range, "asinh_scale": asinh_scale,
                      "normalizer_asinh(height_range/asinh_scale)": float(norm),
                      "sigma_min": 0.002, "sigma_max": 80.0, "native_size": 128, "num_classes": 100,
                      "default_tile_overlap": 32, "blend_floor": 1.0e-3, "weight_floor": 1.0e-12},
        "difficulty_label": {str(d): float(labels_of([d])[0]) for d in (1, 10, 50, 75, 100)},
        "strength_to_sigma": {str(s): float(0.002 * (80.0 / 0.002) ** s) for s in (0.0, 0.25, 0.5, 0.674, 1.0)},
        "tile_starts_overlap32": {str(n): tile_starts(n) for n in (100, 128, 129, 200, 224, 300, 512)},
        "blend_1d_hann128_floored": [float(v) for v in blend_1d],
        "from_model_space": {
            "input": "real/denoised.bin (both samples)",
            "zero_floor_true": w.bin("post/heights_from_real_denoised.s4.bin", heights[:, ::4, ::4]),
            "zero_floor_true_stride": 4,
            "stats": [stats(h) for h in heights],
            "points": {f"{v:+.3f}": float(from_model(np.float32([[v]]), False)[0, 0])
                       for v in (-1.0, -0.5, 0.0, 0.25, 0.5, 0.9, 1.0)},
        },
        "to_model_space": {"input_6x8": synth.tolist(), "output_6x8": to_model(synth[None])[0].tolist()},
        "bilinear_resize_half_pixel": {"input_6x8": synth.tolist(),
                                       "to_4x11": resize(synth[None], (4, 11))[0].tolist(),
                                       "to_9x5": resize(synth[None], (9, 5))[0].tolist()},
    }
    w.json("postprocess_reference.json", j)


README = """# Terrain UNet fixtures

Generated by `python3 tools/terrain_fixtures.py` (deterministic; run `tools/fetch_terrain.sh`
first for the real model). The model and its graph are described in `docs/terrain-onnx.md`.
All tensors are raw little-endian f32, row-major (NCHW for images); every `.bin` is described
(shape, sha256, module path, ONNX value name, statistics) by the JSON file of its group.
The numbers below are regenerated by the tool; `manifest.json` lists every file with its sha256.

| file | what |
| --- | --- |
| `real_reference.json`, `real/` | Real model (sha256 95be54b4…), ONNX Runtime CPU, 1 thread, optimizations off. Batch 2: noise `default_rng(20261201).standard_normal((2,1,128,128), float32)` × sigma; sample 0 sigma 80 / difficulty 10, sample 1 sigma 2.5 / difficulty 75 (graph input = (d-1)/99). Inputs, output, preconditioning scalars, and sample-0 activations at block boundaries: full tensors at ≤16×16, strided slices `[0:1, :, ::s, ::s]` (s = 2 at 32×32, 4 at 64×64, 8 at 128×128) plus whole-tensor stats above that. |
| `real_initializer_map.json` | All 815 initializers of the real file; the anonymous GroupNorm affine tensors (`val_N`, [C,1,1]) mapped to their guided-diffusion names. |
| `tiny_a.onnx`, `tiny_a.json`, `tiny_a/` | Random-weight model of the same family: 16×16, model_channels 8, channel_mult (1,2), 1 res block, attention at ds 2 (2 heads), 8 GroupNorm groups. ORT output for a fixed batch 2 and every block output (both samples). |
| `tiny_b.onnx`, `tiny_b.json`, `tiny_b/` | Same family, non-square 32×16 (H×W), channel_mult (1,2,3), 2 res blocks, attention at ds 2 (2 heads) and 4 (3 heads). |
| `postprocess_reference.json`, `post/` | `generator.py` helpers: model space ↔ heights, half-pixel bilinear resize, tile starts, Hann blend window, strength → sigma, difficulty → label. |
| `kiln_cli/d40_s11_128x128.npy` | Not made by this tool: Kiln's own output, for the browser suite (`tests/browser/run.mjs` compares `Kiln.loadDiffusion(…).generate` with it within 1e-3 m). `./target/release/kiln diffuse --difficulty 40 --size 128x128 --seed 11 --batch 1 --heights tests/fixtures/terrain/kiln_cli/d40_s11_128x128.npy` (heights in metres, `[128, 128]` float32, written on lavapipe at about commit 5106320; kernel work moves it by ~1e-6). Regenerate it with that command when the generator's output changes on purpose. |
| `manifest.json` | Every file with size and sha256; tool versions; check results. |

Checks made by the tool on every run (it fails otherwise): the tiny-graph builder, run with the
real config, reproduces the real export node for node (same 2103-node op sequence, attributes,
graph I/O, `network.*` initializer names and shapes, constant values; only weights and anonymous
value names differ); a float64 numpy implementation of the math in `docs/terrain-onnx.md`
matches ONNX Runtime on the real model and the tiny models.

Suggested tolerances for a from-scratch f32 implementation: tiny models ~1e-5 abs on `denoised`;
real model ~1e-3 abs on `denoised` (f32 accumulation-order effects through 196 convs; see
`checks` in `real_reference.json` for ORT-vs-float64 and ORT-optimized-vs-unoptimized numbers).

## Sizes
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check-only", action="store_true", help="run all checks, write nothing")
    args = ap.parse_args()
    if not MODEL.exists() or sha(MODEL.read_bytes()) != MODEL_SHA:
        sys.exit(f"{MODEL} missing or wrong sha256: run tools/fetch_terrain.sh")
    w = Writer(OUT, args.check_only)
    report = {}
    denoised = real_fixtures(w, report)
    postprocess_fixtures(w, denoised)
    tiny_fixtures(w, "a", TINY_CONFIGS["a"], 1, report)
    tiny_fixtures(w, "b", TINY_CONFIGS["b"], 2, report)
    manifest = {"generator": "tools/terrain_fixtures.py",
                "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                             "onnx": onnx.__version__, "onnxruntime": ort.__version__},
                "checks": report,
                "files": {k: {"bytes": v[0], "sha256": v[1]} for k, v in sorted(w.files.items())}}
    total = sum(v[0] for v in w.files.values())
    groups = {}
    for k, (n, _) in w.files.items():
        g = k.split("/")[0] + ("/" if "/" in k else "")
        groups[g] = groups.get(g, 0) + n
    readme = README + "\n".join(f"- `{g}`: {n / 1024:.1f} KiB" for g, n in sorted(groups.items()))
    readme += f"\n- total (without README.md and manifest.json): {total / 1024:.1f} KiB\n"
    w.raw("README.md", readme)
    w.json("manifest.json", manifest)
    print(json.dumps(report, indent=1))
    print(f"total {total} bytes in {len(w.files)} files -> {OUT}")


if __name__ == "__main__":
    main()
