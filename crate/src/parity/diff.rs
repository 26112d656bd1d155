//! NaN-aware comparisons of whole vectors (logits, hidden states, token ids),
//! shared by every model-level check: the model tests, `kiln-parity` and the
//! CUDA twin's model parity. The op-parity harness uses the same element rule.
//!
//! The rule: an element pair whose difference is not finite (either side NaN
//! or infinite) counts as an infinite difference, so one NaN fails any
//! tolerance. Vectors of different lengths, empty vectors and sparse
//! references that name an index the result lacks are errors, never a pass.

/// `|got − want|` in f64, infinite when it is not finite (NaN or ∞ on either side).
pub fn elem_diff(got: f32, want: f32) -> f64 {
    let d = (got as f64 - want as f64).abs();
    if d.is_finite() { d } else { f64::INFINITY }
}

/// The worst element of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VecDiff {
    /// max |got − want| (∞ if any element is NaN or infinite).
    pub max_abs: f64,
    /// max |want| (∞ if the reference holds a non-finite value).
    pub max_want: f64,
    /// Index (into the reference) of the worst element.
    pub worst: usize,
}

impl VecDiff {
    /// `max_abs` relative to `max |want|` (∞ when anything was non-finite).
    pub fn rel(&self) -> f64 {
        if self.max_want.is_finite() {
            self.max_abs / self.max_want.max(1e-30)
        } else {
            f64::INFINITY
        }
    }

    /// `max |got − want| ≤ rtol · max |want| + atol`; false if anything was NaN.
    pub fn within(&self, rtol: f64, atol: f64) -> bool {
        self.max_want.is_finite() && self.max_abs <= rtol * self.max_want + atol
    }
}

/// Compares two vectors element by element. Errors when the lengths differ or
/// the reference is empty.
pub fn vec_diff(got: &[f32], want: &[f32]) -> Result<VecDiff, String> {
    if got.len() != want.len() {
        return Err(format!(
            "got {} values, the reference has {}",
            got.len(),
            want.len()
        ));
    }
    sparse_diff(got, want.iter().copied().enumerate())
}

/// Compares `got` at the indices a sparse reference names (e.g. PyTorch's
/// top-20 logits as `(index, value)` pairs). Errors when the reference is
/// empty or names an index `got` lacks.
pub fn sparse_diff(
    got: &[f32],
    want: impl IntoIterator<Item = (usize, f32)>,
) -> Result<VecDiff, String> {
    let mut r = VecDiff {
        max_abs: 0.0,
        max_want: 0.0,
        worst: 0,
    };
    let mut n = 0usize;
    for (i, w) in want {
        let g = *got.get(i).ok_or_else(|| {
            format!(
                "the reference names index {i}; the result has {} values",
                got.len()
            )
        })?;
        let d = elem_diff(g, w);
        if d > r.max_abs || n == 0 {
            r.max_abs = r.max_abs.max(d);
            r.worst = i;
        }
        let m = if w.is_finite() {
            w.abs() as f64
        } else {
            f64::INFINITY
        };
        r.max_want = r.max_want.max(m);
        n += 1;
    }
    if n == 0 {
        return Err("the reference is empty".into());
    }
    Ok(r)
}

/// How many leading tokens of `got` equal the reference's. Errors when the
/// reference is empty (nothing would be checked).
pub fn tokens_agree(got: &[u32], want: &[u32]) -> Result<usize, String> {
    if want.is_empty() {
        return Err("the reference has no tokens".into());
    }
    Ok(got.iter().zip(want).take_while(|(a, b)| a == b).count())
}

/// Ok when `got` equals the (non-empty) reference token for token.
pub fn same_tokens(got: &[u32], want: &[u32]) -> Result<(), String> {
    let agree = tokens_agree(got, want)?;
    if agree == want.len() && got.len() == want.len() {
        Ok(())
    } else {
        Err(format!(
            "{agree} of {} tokens agree ({} produced): got {got:?}, want {want:?}",
            want.len(),
            got.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_vectors_pass_and_report_zero() {
        let d = vec_diff(&[1.0, -2.0, 3.0], &[1.0, -2.0, 3.0]).unwrap();
        assert_eq!((d.max_abs, d.max_want), (0.0, 3.0));
        assert!(d.within(0.0, 0.0));
    }

    #[test]
    fn a_planted_nan_fails_every_tolerance() {
        for (got, want) in [
            (vec![1.0, f32::NAN, 3.0], vec![1.0, 2.0, 3.0]),
            (vec![1.0, 2.0, 3.0], vec![1.0, f32::NAN, 3.0]),
            (vec![f32::NAN; 3], vec![f32::NAN; 3]),
            (vec![1.0, f32::INFINITY, 3.0], vec![1.0, 2.0, 3.0]),
        ] {
            let d = vec_diff(&got, &want).unwrap();
            assert!(!d.within(1e9, 1e9), "{got:?} vs {want:?} passed");
            assert!(d.rel().is_infinite());
        }
        // The NaN is found wherever it sits, first or last.
        let d = vec_diff(&[f32::NAN, 1.0], &[0.0, 1.0]).unwrap();
        assert_eq!((d.max_abs, d.worst), (f64::INFINITY, 0));
        let d = vec_diff(&[0.0, 1.0, f32::NAN], &[0.5, 1.0, 2.0]).unwrap();
        assert_eq!((d.max_abs, d.worst), (f64::INFINITY, 2));
    }

    #[test]
    fn short_and_empty_vectors_are_errors() {
        assert!(vec_diff(&[1.0, 2.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(vec_diff(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_err());
        assert!(vec_diff(&[], &[]).is_err());
    }

    #[test]
    fn sparse_references_check_their_indices() {
        let got = [0.0, 5.0, 9.0];
        let d = sparse_diff(&got, [(2, 9.5), (1, 5.0)]).unwrap();
        assert_eq!((d.max_abs, d.max_want, d.worst), (0.5, 9.5, 2));
        // A missing index is an error, not a NaN that folds away.
        assert!(sparse_diff(&got, [(1, 5.0), (3, 1.0)]).is_err());
        assert!(sparse_diff(&got, []).is_err());
        assert!(
            !sparse_diff(&[0.0, f32::NAN], [(1, 1.0)])
                .unwrap()
                .within(1.0, 1.0)
        );
    }

    #[test]
    fn token_checks_fail_on_empty_short_and_different() {
        assert!(tokens_agree(&[1, 2], &[]).is_err());
        assert!(same_tokens(&[], &[]).is_err());
        assert!(same_tokens(&[1, 2], &[1, 2, 3]).is_err());
        assert!(same_tokens(&[1, 2, 3, 4], &[1, 2, 3]).is_err());
        assert!(same_tokens(&[1, 5, 3], &[1, 2, 3]).is_err());
        assert_eq!(tokens_agree(&[1, 5, 3], &[1, 2, 3]).unwrap(), 1);
        assert!(same_tokens(&[1, 2, 3], &[1, 2, 3]).is_ok());
    }
}
