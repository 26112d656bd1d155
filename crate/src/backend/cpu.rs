//! The CPU reference backend: plain Rust, every op's `cpu` function in graph
//! order, f32 storage with f64 accumulation. Written for clarity — it is the
//! oracle the GPU backends are tested against, not a fast path.

use super::{Backend, BackendError, Executable, ReadyReads, check_copy, check_write, readable};
use crate::graph::{Graph, TensorId};
use crate::host::HostTensor;

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

pub struct CpuExecutable {
    graph: Graph,
    tensors: Vec<HostTensor>,
    reads: ReadyReads,
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu-reference".into()
    }

    fn compile(&self, graph: &Graph) -> Result<Box<dyn Executable>, BackendError> {
        let tensors = graph
            .tensors
            .iter()
            .map(|t| HostTensor::zeros(&t.shape, t.dtype))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(CpuExecutable {
            graph: graph.clone(),
            tensors,
            reads: ReadyReads::default(),
        }))
    }
}

impl Executable for CpuExecutable {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn write(&mut self, t: TensorId, data: &HostTensor) -> Result<(), BackendError> {
        check_write(&self.graph, t, data)?;
        self.tensors[t.0] = data.clone();
        Ok(())
    }

    fn fill(&mut self, t: TensorId, byte: u8) -> Result<(), BackendError> {
        self.graph.info(t)?;
        self.tensors[t.0].data.fill(byte);
        Ok(())
    }

    fn run_program(&mut self, p: usize, syms: &[u32]) -> Result<(), BackendError> {
        self.graph.check_syms(p, syms)?;
        let empty = HostTensor {
            shape: vec![],
            dtype: crate::DType::F32,
            data: vec![],
        };
        for node in &self.graph.nodes[self.graph.program(p)?] {
            let in_place = node.op.in_place();
            let out_id = node.output;
            let mut out = match in_place {
                Some(_) => std::mem::replace(&mut self.tensors[out_id.0], empty.clone()),
                None => {
                    let info = &self.graph.tensors[out_id.0];
                    HostTensor::zeros(&info.shape, info.dtype)?
                }
            };
            let inputs: Vec<&HostTensor> = node
                .inputs
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if Some(i) == in_place {
                        &empty
                    } else {
                        &self.tensors[t.0]
                    }
                })
                .collect();
            let result = node.op.cpu(&inputs, &mut out, syms);
            self.tensors[out_id.0] = out;
            result?;
        }
        Ok(())
    }

    fn device_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.data.len() as u64).sum()
    }

    fn read(&mut self, t: TensorId) -> Result<HostTensor, BackendError> {
        readable(&self.graph, t)?;
        Ok(self.tensors[t.0].clone())
    }

    fn read_start(&mut self, t: TensorId) -> Result<usize, BackendError> {
        let data = self.read(t)?;
        Ok(self.reads.push(data))
    }

    fn read_finish(&mut self, ticket: usize) -> Result<HostTensor, BackendError> {
        self.reads.take(ticket)
    }

    fn copy_before_next_run(&mut self, src: TensorId, dst: TensorId) -> Result<(), BackendError> {
        check_copy(&self.graph, src, dst)?;
        // The CPU runs in order, so copying now is the same as before the next run.
        self.tensors[dst.0].data = self.tensors[src.0].data.clone();
        Ok(())
    }
}
