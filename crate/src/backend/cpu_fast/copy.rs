//! `concat` on the CPU: the two inputs' rows copied byte for byte into the
//! output (the reference converts through f32 vectors; the UNet's skip
//! concatenations are big enough for that to show).

use super::Ctx;
use super::kernels::Kernel;
use crate::backend::BackendError;
use crate::host::HostTensor;

pub(crate) struct ConcatKernel(pub usize);

impl Kernel for ConcatKernel {
    fn label(&self) -> String {
        "concat".into()
    }

    fn run(
        &self,
        inputs: &[&HostTensor],
        out: &mut HostTensor,
        _syms: &[u32],
        _ctx: &mut Ctx,
    ) -> Result<(), BackendError> {
        let (a, b) = (inputs[0], inputs[1]);
        let ax = self.0;
        let bad = || {
            BackendError::Validation(format!(
                "concat: {:?} and {:?} along {ax}",
                a.shape, b.shape
            ))
        };
        if ax >= a.shape.len() || a.shape.len() != b.shape.len() {
            return Err(bad());
        }
        let inner: usize = a.shape[ax + 1..].iter().product::<usize>() * 4;
        let (ra, rb) = (a.shape[ax] * inner, b.shape[ax] * inner);
        if a.data.len() + b.data.len() != out.data.len()
            || (ra == 0 && !a.data.is_empty())
            || (rb == 0 && !b.data.is_empty())
        {
            return Err(bad());
        }
        let rows = a
            .data
            .len()
            .checked_div(ra)
            .unwrap_or(b.data.len() / rb.max(1));
        if rows * ra != a.data.len() || rows * rb != b.data.len() {
            return Err(bad());
        }
        for (i, o) in out.data.chunks_exact_mut(ra + rb).enumerate().take(rows) {
            o[..ra].copy_from_slice(&a.data[i * ra..(i + 1) * ra]);
            o[ra..].copy_from_slice(&b.data[i * rb..(i + 1) * rb]);
        }
        Ok(())
    }
}
