//! Liveness pooling of intermediates, shared by the wgpu and CUDA executors.
//!
//! Views (`reshape`) share their source's storage: `root` maps each tensor to
//! the tensor that owns its memory. Pinned roots (weights, inputs, state,
//! graph outputs and anything viewed as one) keep memory of their own; every
//! other intermediate takes a pool buffer when its node runs and gives it
//! back after the last reader of its root (programs run one at a time, so
//! all programs of a graph share the pool). A request takes the smallest
//! free buffer that fits and is at most 1/8 larger, else a new buffer is
//! added.

use crate::graph::{Graph, TensorId, TensorKind};

pub struct PoolPlan {
    /// The tensor owning each tensor's memory.
    pub root: Vec<usize>,
    /// Per root: keeps a buffer of its own.
    pub pinned: Vec<bool>,
    /// Per tensor whose root is pooled: its pool buffer.
    pub pooled: Vec<Option<usize>>,
    /// Size of each pool buffer in bytes (a multiple of 4).
    pub pool_bytes: Vec<u64>,
}

fn align4(n: u64) -> u64 {
    n.div_ceil(4).max(1) * 4
}

pub fn plan(graph: &Graph) -> PoolPlan {
    let n = graph.tensors.len();
    let mut root: Vec<usize> = (0..n).collect();
    for node in &graph.nodes {
        if let Some(i) = node.op.alias_input() {
            root[node.output.0] = root[node.inputs[i].0];
        }
    }
    let mut pinned = vec![false; n];
    for (i, info) in graph.tensors.iter().enumerate() {
        if info.kind != TensorKind::Intermediate || graph.outputs.contains(&TensorId(i)) {
            pinned[root[i]] = true;
        }
    }
    let mut root_last: Vec<Option<usize>> = vec![None; n];
    for (t, l) in graph.last_use().into_iter().enumerate() {
        root_last[root[t]] = root_last[root[t]].max(l);
    }
    let mut pooled_root: Vec<Option<usize>> = vec![None; n];
    let mut pool_bytes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for (ni, node) in graph.nodes.iter().enumerate() {
        let out = node.output.0;
        if root[out] == out && !pinned[out] && pooled_root[out].is_none() {
            let need = align4(graph.tensors[out].bytes() as u64);
            // Only buffers at most 1/8 larger: a small long-lived tensor
            // (a block boundary) must not hold a large buffer that the next
            // layer's activations then allocate again.
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| pool_bytes[**b] >= need && pool_bytes[**b] <= need + need / 8)
                .min_by_key(|(_, b)| pool_bytes[**b])
                .map(|(i, _)| i);
            pooled_root[out] = Some(match best {
                Some(i) => free.swap_remove(i),
                None => {
                    pool_bytes.push(need);
                    pool_bytes.len() - 1
                }
            });
        }
        // Release roots whose last reader is this node (and dead outputs).
        for t in node.inputs.iter().chain(std::iter::once(&node.output)) {
            let r = root[t.0];
            let done = root_last[r].is_none_or(|l| l <= ni);
            if let (false, true, Some(b)) = (pinned[r], done, pooled_root[r])
                && !free.contains(&b)
            {
                free.push(b);
            }
        }
    }
    let pooled = (0..n).map(|t| pooled_root[root[t]]).collect();
    PoolPlan {
        root,
        pinned,
        pooled,
        pool_bytes,
    }
}

/// The largest number of bytes the pooled intermediates need at once (the
/// lower bound of `pool_bytes`' sum), over all programs.
pub fn peak_live_bytes(graph: &Graph, plan: &PoolPlan) -> u64 {
    let n = graph.tensors.len();
    let mut last: Vec<Option<usize>> = vec![None; n];
    for (t, l) in graph.last_use().into_iter().enumerate() {
        let r = plan.root[t];
        last[r] = last[r].max(l);
    }
    // +bytes when a pooled root is written, −bytes after its last reader.
    let mut delta = vec![0i64; graph.nodes.len() + 1];
    for (i, node) in graph.nodes.iter().enumerate() {
        let out = node.output.0;
        if plan.root[out] == out && plan.pooled[out].is_some() {
            let b = graph.tensors[out].bytes() as i64;
            delta[i] += b;
            delta[last[out].unwrap_or(i).max(i) + 1] -= b;
        }
    }
    let mut live = 0i64;
    let mut peak = 0i64;
    for d in delta {
        live += d;
        peak = peak.max(live);
    }
    peak as u64
}
