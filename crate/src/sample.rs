//! Token sampling on the host, in llama.cpp's order: repetition / frequency /
//! presence penalties over the recent tokens → top-k → temperature → top-p →
//! min-p → a draw from a seeded PRNG (same seed, same tokens).
//! `temperature <= 0` is greedy (argmax after penalties).

use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep the k most likely tokens (0: off).
    pub top_k: usize,
    /// Keep the smallest set with cumulative probability ≥ p (1: off).
    pub top_p: f32,
    /// Drop tokens with probability < min_p × the top probability (0: off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens (1: off).
    pub repetition_penalty: f32,
    /// Subtract count × this from recent tokens' logits (0: off).
    pub frequency_penalty: f32,
    /// Subtract this from logits of tokens seen recently (0: off).
    pub presence_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Plain greedy: the device's argmax gives the token, no logits readback.
    pub fn is_plain_greedy(&self) -> bool {
        self.temperature <= 0.0 && !self.has_penalties()
    }

    fn has_penalties(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.frequency_penalty != 0.0
            || self.presence_penalty != 0.0
    }
}

pub struct Sampler {
    pub params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        let rng = Rng::new(params.seed);
        Sampler { params, rng }
    }

    /// Picks the next token from `logits` given the tokens so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.has_penalties() {
            let recent = &history[history.len().saturating_sub(p.penalty_last_n)..];
            let mut counts = std::collections::HashMap::<u32, u32>::new();
            for t in recent {
                *counts.entry(*t).or_default() += 1;
            }
            for (t, n) in counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                    *l -= n as f32 * p.frequency_penalty + p.presence_penalty;
                }
            }
        }
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, v)| {
                    if *v > b.1 { (i, *v) } else { b }
                })
                .0 as u32
        };
        if p.temperature <= 0.0 {
            return argmax();
        }
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| (i as u32, *v))
            .collect();
        if cand.is_empty() {
            return argmax();
        }
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if p.top_k > 0 {
            cand.truncate(p.top_k);
        }
        let m = cand[0].1;
        let mut probs: Vec<f64> = cand
            .iter()
            .map(|(_, v)| (((*v - m) / p.temperature) as f64).exp())
            .collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        let mut keep = probs.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, q) in probs.iter().enumerate() {
                acc += q;
                if acc >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p as f64;
            keep = keep.min(probs.iter().take_while(|q| **q >= floor).count().max(1));
        }
        let total: f64 = probs[..keep].iter().sum();
        let mut r = self.rng.uniform() as f64 * total;
        for (i, q) in probs[..keep].iter().enumerate() {
            r -= q;
            if r <= 0.0 {
                return cand[i].0;
            }
        }
        cand[keep - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, -1.0, 2.9]
    }

    #[test]
    fn greedy_and_penalties() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&mut logits(), &[]), 1);
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.5,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut logits(), &[1]), 4, "3.0/1.5 = 2.0 < 2.9");
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 5.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut logits(), &[1, 4]), 2);
    }

    #[test]
    fn seeds_repeat_and_filters_bound_the_choice() {
        let p = SamplingParams {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        };
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..50)
                .map(|_| s.sample(&mut logits(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&p), draw(&p));
        assert!(
            draw(&p)
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 2
        );
        let top2 = SamplingParams {
            top_k: 2,
            ..p.clone()
        };
        assert!(draw(&top2).iter().all(|t| *t == 1 || *t == 4));
        let nucleus = SamplingParams {
            top_p: 0.01,
            ..p.clone()
        };
        assert!(draw(&nucleus).iter().all(|t| *t == 1));
        let minp = SamplingParams { min_p: 0.5, ..p };
        assert!(draw(&minp).iter().all(|t| [1, 4, 2].contains(t)));
    }
}
