//! Reverse-mode differentiation over a [`Graph`]: from a range of forward
//! nodes and the gradients of some of their outputs (the seeds), push the
//! backward graph — ordinary ops, so it compiles and runs on every backend —
//! and return the gradients of the requested tensors.
//!
//! Each op contributes its own [`crate::ops::Op::backward`]; a tensor read by
//! several nodes gets the sum of their contributions (`add`).
//!
//! **Activation recomputation** (checkpointing): nodes inside a
//! `checkpoint` range (one transformer block, say) are pushed a second time
//! just before that range's backward, and the backward reads the recomputed
//! tensors. The forward pass's own intermediates of the range then die as
//! soon as the forward moves on (backends pool them by liveness), so peak
//! activation memory is the range boundaries (one `[tokens, d]` per block)
//! plus one block's activations and gradients, instead of every block's.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::{KilnError, Result};
use crate::graph::{Graph, TensorId};
use crate::ops::Backward;

/// Pushes the backward of `nodes` and returns the gradient of each `wrt`
/// tensor (in order). `seeds` are `(tensor, its gradient)` pairs;
/// `checkpoint` ranges (within `nodes`, disjoint) are recomputed.
pub fn gradients(
    g: &mut Graph,
    nodes: Range<usize>,
    seeds: &[(TensorId, TensorId)],
    wrt: &[TensorId],
    checkpoint: &[Range<usize>],
) -> Result<Vec<TensorId>> {
    let bad = |detail: String| KilnError::BadParam {
        op: "autodiff",
        detail,
    };
    if nodes.end > g.nodes.len() {
        return Err(bad(format!("node range {nodes:?} is past the graph")));
    }
    // Which tensors depend on a `wrt` tensor (only those carry gradients).
    let mut requires = vec![false; g.tensors.len()];
    for t in wrt {
        g.info(*t)?;
        requires[t.0] = true;
    }
    for n in &g.nodes[nodes.clone()] {
        if n.inputs.iter().any(|t| requires[t.0]) {
            requires[n.output.0] = true;
        }
    }
    let mut grads: HashMap<TensorId, TensorId> = HashMap::new();
    for (t, dt) in seeds {
        if g.info(*t)?.shape != g.info(*dt)?.shape {
            return Err(bad(format!(
                "seed gradient of tensor {} has another shape",
                t.0
            )));
        }
        grads.insert(*t, *dt);
    }
    // Units in reverse: a checkpoint range, or one node.
    let mut units: Vec<Range<usize>> = Vec::new();
    let mut i = nodes.start;
    while i < nodes.end {
        match checkpoint.iter().find(|r| r.start == i && !r.is_empty()) {
            Some(r) if r.end <= nodes.end => {
                units.push(r.clone());
                i = r.end;
            }
            Some(r) => return Err(bad(format!("checkpoint {r:?} leaves the node range"))),
            None => {
                units.push(i..i + 1);
                i += 1;
            }
        }
    }
    for unit in units.into_iter().rev() {
        let recompute = unit.len() > 1 || checkpoint.contains(&unit);
        // Original tensor -> the tensor the backward reads.
        let mut map: HashMap<TensorId, TensorId> = HashMap::new();
        if recompute && unit.clone().any(|n| requires[g.nodes[n].output.0]) {
            for n in unit.clone() {
                let node = g.nodes[n].clone();
                if node.op.in_place().is_some() {
                    return Err(bad(format!(
                        "{} writes state in place and cannot be recomputed",
                        node.op.name()
                    )));
                }
                let ins: Vec<TensorId> = node
                    .inputs
                    .iter()
                    .map(|t| *map.get(t).unwrap_or(t))
                    .collect();
                let out = g.push_arc(node.op.clone(), &ins)?;
                map.insert(node.output, out);
            }
        }
        for n in unit.rev() {
            let node = g.nodes[n].clone();
            if !requires[node.output.0] {
                continue;
            }
            let Some(dy) = grads.remove(&node.output) else {
                continue;
            };
            let need: Vec<bool> = node.inputs.iter().map(|t| requires[t.0]).collect();
            let b = Backward {
                inputs: node
                    .inputs
                    .iter()
                    .map(|t| *map.get(t).unwrap_or(t))
                    .collect(),
                output: *map.get(&node.output).unwrap_or(&node.output),
                dy,
                need: need.clone(),
            };
            let dx = node.op.backward(g, &b)?;
            for ((t, d), needed) in node.inputs.iter().zip(dx).zip(need) {
                let Some(d) = d.filter(|_| needed) else {
                    continue;
                };
                let sum = match grads.get(t) {
                    Some(prev) => g.add(*prev, d)?,
                    None => d,
                };
                grads.insert(*t, sum);
            }
        }
    }
    wrt.iter()
        .map(|t| {
            grads.get(t).copied().ok_or_else(|| {
                bad(format!(
                    "tensor '{}' does not influence the seeded outputs",
                    g.tensors[t.0].name
                ))
            })
        })
        .collect()
}
