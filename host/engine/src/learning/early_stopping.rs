//! Early stopping on a validation loss with patience (HETAL, section 5: patience 3): the owner
//! sees one loss per epoch and answers continue or stop.

/// The owner's answer after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Decision {
    /// Train another epoch.
    Continue,
    /// Stop: the best model is the one `patience` epochs back.
    Stop,
}

/// Tracks the best validation loss and the epochs since it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    best: f64,
    best_epoch: usize,
    seen: usize,
}

impl EarlyStopping {
    /// A tracker with `patience` (at least 1).
    pub fn new(patience: usize) -> Self {
        EarlyStopping { patience: patience.max(1), best: f64::INFINITY, best_epoch: 0, seen: 0 }
    }

    /// Records the loss of the next epoch (epochs count from 1) and decides. A NaN loss counts
    /// as no improvement.
    pub fn observe(&mut self, loss: f64) -> Decision {
        self.seen += 1;
        if loss < self.best {
            self.best = loss;
            self.best_epoch = self.seen;
        }
        if self.seen - self.best_epoch >= self.patience {
            Decision::Stop
        } else {
            Decision::Continue
        }
    }

    /// The epoch (from 1) with the lowest loss so far, 0 before any.
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }

    /// The lowest loss so far.
    pub fn best_loss(&self) -> f64 {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        // A crafted curve: improves to epoch 4, then 3 epochs worse, stop at epoch 7.
        let curve = [1.0, 0.8, 0.7, 0.65, 0.66, 0.65, 0.7, 0.5];
        let mut es = EarlyStopping::new(3);
        let decisions: Vec<Decision> = curve.iter().map(|&l| es.observe(l)).collect();
        let first_stop = decisions.iter().position(|&d| d == Decision::Stop).map(|i| i + 1);
        assert_eq!(first_stop, Some(7));
        let mut es = EarlyStopping::new(3);
        for &l in &curve[..7] {
            es.observe(l);
        }
        assert_eq!((es.best_epoch(), es.best_loss()), (4, 0.65));
    }

    #[test]
    fn a_steadily_falling_curve_never_stops_and_nan_is_no_improvement() {
        let mut es = EarlyStopping::new(3);
        assert!((0..50).all(|e| es.observe(1.0 / (e + 1) as f64) == Decision::Continue));
        let mut es = EarlyStopping::new(2);
        assert_eq!(es.observe(1.0), Decision::Continue);
        assert_eq!(es.observe(f64::NAN), Decision::Continue);
        assert_eq!(es.observe(f64::NAN), Decision::Stop);
    }
}
