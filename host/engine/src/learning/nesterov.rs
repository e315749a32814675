//! Nesterov's accelerated gradient in the form of HE logistic regression (Kim et al., "Logistic
//! regression model training based on the approximate homomorphic encryption", BMC Medical
//! Genomics 2018) that HETAL uses: `lambda_0 = 0`, `lambda_{k+1} = (1 + sqrt(1 + 4
//! lambda_k^2)) / 2`, `gamma_k = (1 - lambda_{k+1}) / lambda_{k+2}`, and with `k` the global
//! step, `w_{k+1} = v_k - lr grad(v_k)`, `v_{k+1} = (1 - gamma_k) w_{k+1} + gamma_k w_k`, from
//! `w_0 = v_0 = 0`. The gradient is taken at the look-ahead `v`; the model is `w`.

/// The `gamma` sequence: one value per global step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nesterov {
    /// `lambda_{k+1}` for the next step `k`.
    lambda: f64,
}

impl Default for Nesterov {
    fn default() -> Self {
        Self::new()
    }
}

impl Nesterov {
    /// The sequence at step 0 (`lambda_1 = 1`, from `lambda_0 = 0`).
    pub fn new() -> Self {
        Nesterov { lambda: 1.0 }
    }

    /// `gamma_k` for the current step, then advances to the next.
    pub fn next_gamma(&mut self) -> f64 {
        let next = (1.0 + (1.0 + 4.0 * self.lambda * self.lambda).sqrt()) / 2.0;
        let gamma = (1.0 - self.lambda) / next;
        self.lambda = next;
        gamma
    }

    /// One update on plaintext vectors: `w <- v - lr g`, `v <- (1 - gamma) w_new + gamma w_old`.
    pub fn update(&mut self, w: &mut [f64], v: &mut [f64], grad: &[f64], lr: f64) {
        let gamma = self.next_gamma();
        for ((wi, vi), gi) in w.iter_mut().zip(v.iter_mut()).zip(grad) {
            let w_new = *vi - lr * gi;
            *vi = (1.0 - gamma) * w_new + gamma * *wi;
            *wi = w_new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_sequence_matches_the_recurrence() {
        // lambda: 0, 1, (1 + sqrt 5)/2, ...; gamma_0 = (1 - 1)/lambda_2 = 0.
        let mut n = Nesterov::new();
        assert_eq!(n.next_gamma(), 0.0);
        let l2 = (1.0 + 5f64.sqrt()) / 2.0;
        let l3 = (1.0 + (1.0 + 4.0 * l2 * l2).sqrt()) / 2.0;
        assert!((n.next_gamma() - (1.0 - l2) / l3).abs() < 1e-15);
        // gamma_k tends to -1 from above (lambda_k grows like k/2).
        let g = (0..10_000).map(|_| n.next_gamma()).last().unwrap_or(0.0);
        assert!(g > -1.0 && g < -0.999, "{g}");
    }

    #[test]
    fn update_on_a_quadratic_converges_faster_than_gradient_descent() {
        // f(w) = sum a_i w_i^2 / 2 with condition number 100: NAG (no restarts, so it
        // oscillates) still reaches 1e-6 in half GD's steps.
        let a = [1.0, 0.1, 0.01];
        let steps_to = |nag: bool| {
            let (mut w, mut v) = (vec![1.0; 3], vec![1.0; 3]);
            let mut n = Nesterov::new();
            for k in 0..100_000 {
                let at = if nag { &v } else { &w };
                let g: Vec<f64> = at.iter().zip(&a).map(|(x, ai)| x * ai).collect();
                if nag {
                    n.update(&mut w, &mut v, &g, 1.0);
                } else {
                    w.iter_mut().zip(&g).for_each(|(x, gi)| *x -= gi);
                }
                if w.iter().all(|x| x.abs() < 1e-6) {
                    return k;
                }
            }
            usize::MAX
        };
        let (nag, gd) = (steps_to(true), steps_to(false));
        assert!(nag * 2 < gd, "NAG {nag} steps, GD {gd}");
    }
}
