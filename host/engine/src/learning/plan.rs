//! Bootstraps per training step, from the level counts of the step's parts: the matrix products
//! run on the counting backend (their real code), the softmax by its stage model
//! ([`Softmax::stages`]), the weights either tiled (HETAL: every tiled block refreshed) or compact
//! ([`super::compact`]: one complex bootstrap refreshes `W` and its Nesterov companion). A first
//! planner: it places bootstraps on one chain of levels, assuming a bootstrap can follow any
//! level; the simulator planner will run the whole step's circuits and place them exactly.

use super::compact::CompactLayout;
use super::softmax::Softmax;
use super::{diag_abt, diag_atb, diag_atb_prot_up, CountingBackend, EncMatrix, LevelOnly, Packing, Tiling};
use crate::Result;

/// The level budget of a parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Chain {
    /// Level of a fresh ciphertext (n16-boot: 12).
    pub fresh: usize,
    /// Level after a bootstrap (n16-boot: 9).
    pub after_bootstrap: usize,
}

/// How the weights live between steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum WeightForm {
    /// Tiled blocks, each refreshed by its own bootstrap (HETAL).
    Tiled,
    /// One compact vector, expanded by rotations and a mask, `W` and `V` refreshed together.
    Compact,
}

/// Bootstraps and levels of one step.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepPlan {
    /// Level of the logits after DiagABT.
    pub logits_level: usize,
    /// Softmax levels.
    pub softmax_levels: usize,
    /// Bootstraps of the softmax ciphertext.
    pub softmax_bootstraps: usize,
    /// Levels DiagATB takes from `P - Y` (PRotUp).
    pub atb_levels_from_residual: usize,
    /// Bootstraps refreshing the weights.
    pub weight_bootstraps: usize,
    /// Slots of each weight bootstrap (a sparse packing for the compact form).
    pub weight_bootstrap_slots: usize,
}

impl StepPlan {
    /// All bootstraps of the step.
    pub fn bootstraps(&self) -> usize {
        self.softmax_bootstraps + self.weight_bootstraps
    }
}

/// Plans a step for a batch of `batch` rows, `cols` columns (with the bias) and `classes`
/// classes on `slots` slots.
pub fn plan_step(
    softmax: &Softmax,
    form: WeightForm,
    chain: Chain,
    batch: usize,
    cols: usize,
    classes: usize,
    slots: usize,
) -> Result<StepPlan> {
    let pk = Packing::hetal(classes, batch, slots)?;
    let lv = |r, c, t, l| EncMatrix::<LevelOnly>::level_only(r, c, pk, t, l);
    let ops = CountingBackend::new(slots);
    // The weights enter DiagABT fresh from their bootstrap; the compact form pays one mask to
    // expand.
    let w_level = match form {
        WeightForm::Tiled => chain.after_bootstrap,
        WeightForm::Compact => chain.after_bootstrap - 1,
    };
    let logits =
        diag_abt(&ops, &lv(batch, cols, Tiling::None, chain.fresh)?, &lv(classes, cols, Tiling::Vertical, w_level)?)?;
    let logits_level = logits.blocks.iter().map(|b| b.level).min().unwrap_or(0);
    // DiagATB's levels from P - Y: PRotUp, with the features fresh.
    let probe = 20;
    let g = diag_atb_prot_up(
        &ops,
        &lv(batch, classes, Tiling::Horizontal, probe)?,
        &lv(batch, cols, Tiling::None, probe + 1)?,
    )?;
    let atb = probe - g.blocks.iter().map(|b| b.level).min().unwrap_or(0);
    let g2 = diag_atb(&ops, &lv(batch, classes, Tiling::Horizontal, probe)?, &lv(batch, cols, Tiling::None, probe)?)?;
    let atb = atb.min(probe - g2.blocks.iter().map(|b| b.level).min().unwrap_or(0));
    let need = softmax.levels() + atb;
    let per = chain.after_bootstrap;
    let softmax_bootstraps = need.saturating_sub(logits_level).div_ceil(per);
    let (weight_bootstraps, weight_bootstrap_slots) = match form {
        WeightForm::Tiled => (cols.div_ceil(pk.s1), slots),
        WeightForm::Compact => (1, CompactLayout::new(pk, classes, cols)?.sparse_slots()),
    };
    Ok(StepPlan {
        logits_level,
        softmax_levels: softmax.levels(),
        softmax_bootstraps,
        atb_levels_from_residual: atb,
        weight_bootstraps,
        weight_bootstrap_slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::softmax::HetalSoftmax;

    const N16_BOOT: Chain = Chain { fresh: 12, after_bootstrap: 9 };

    #[test]
    fn hetal_style_step_needs_34_bootstraps_and_the_compact_nas_step_6() {
        // The SNIPS shape: batch 1024, 769 columns, 7 classes, 2^15 slots. HETAL's way: its
        // softmax (77 levels from logits at level 6) takes 9 bootstraps, the 25 tiled weight
        // blocks 25: the notes' 34. Normalize-and-square (47 levels) from logits at level 5 takes
        // 5, and one sparse complex bootstrap (8192 slots) refreshes W and V.
        let hetal =
            plan_step(&Softmax::Hetal(HetalSoftmax::published(7)), WeightForm::Tiled, N16_BOOT, 1024, 769, 7, 1 << 15)
                .unwrap();
        assert_eq!((hetal.logits_level, hetal.softmax_bootstraps, hetal.weight_bootstraps), (6, 9, 25));
        assert_eq!(hetal.bootstraps(), 34);
        let nas =
            plan_step(&Softmax::precise_nas(7).unwrap(), WeightForm::Compact, N16_BOOT, 1024, 769, 7, 1 << 15).unwrap();
        assert_eq!((nas.logits_level, nas.softmax_bootstraps, nas.atb_levels_from_residual), (5, 5, 3));
        assert_eq!((nas.bootstraps(), nas.weight_bootstrap_slots), (6, 8192));
        // MNIST's shape (10 classes, pad 16): the same 47 levels, a 16384-slot weight bootstrap.
        let mnist =
            plan_step(&Softmax::precise_nas(10).unwrap(), WeightForm::Compact, N16_BOOT, 1024, 769, 10, 1 << 15)
                .unwrap();
        assert_eq!((mnist.bootstraps(), mnist.weight_bootstrap_slots), (6, 16384));
    }
}
