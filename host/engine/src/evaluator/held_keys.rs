//! The keys an evaluator holds: prepared from an [`EvaluationKeys`] set up front, or from a
//! [`KeyStore`] when first used (and dropped again by [`Evaluator::release_keys`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hetune_core::rlwe::{Context, SwitchingKey, SwitchingKind};

use super::keys::{EncapsulationKeys, EvaluationKeys, KeyEntry, KeyStore};
use super::secret_switch::{EncapsulationSwitch, SecretSwitchKey};
use super::Evaluator;
use crate::Error;

/// Bootstrapping's encapsulation pair, prepared for the key switches.
pub struct PreparedEncapsulation {
    /// Dense to sparse secret (over `q_0 p_0`).
    pub to_sparse: EncapsulationSwitch,
    /// Sparse to dense secret.
    pub to_dense: SecretSwitchKey,
}

/// A key held but perhaps not loaded.
struct Slot<T>(Mutex<Option<Arc<T>>>);

impl<T> Slot<T> {
    fn loaded(value: T) -> Self {
        Slot(Mutex::new(Some(Arc::new(value))))
    }

    fn empty() -> Self {
        Slot(Mutex::new(None))
    }

    /// The value, loading it with `load` if it is not in memory.
    fn get(&self, load: impl FnOnce() -> Result<T, Error>) -> Result<Arc<T>, Error> {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = v.as_ref() {
            return Ok(x.clone());
        }
        let x = Arc::new(load()?);
        *v = Some(x.clone());
        Ok(x)
    }

    fn peek(&self) -> Option<Arc<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The evaluator's keys.
pub(crate) struct HeldKeys {
    store: Option<Arc<dyn KeyStore>>,
    relin: Option<Slot<KeyEntry>>,
    galois: BTreeMap<u64, Slot<KeyEntry>>,
    encapsulation: Option<Slot<PreparedEncapsulation>>,
}

fn relin_entry(ctx: &Context, k: SwitchingKey) -> Result<KeyEntry, Error> {
    if k.kind != SwitchingKind::Relinearization {
        return Err(Error::ParameterMismatch("relinearisation slot holds a Galois key"));
    }
    KeyEntry::new(ctx, k)
}

fn galois_entry(ctx: &Context, g: u64, k: SwitchingKey) -> Result<KeyEntry, Error> {
    if k.kind != SwitchingKind::Galois(g) {
        return Err(Error::ParameterMismatch("Galois key filed under another Galois element"));
    }
    KeyEntry::new(ctx, k)
}

fn prepare_encapsulation(ctx: &Context, k: EncapsulationKeys) -> Result<PreparedEncapsulation, Error> {
    Ok(PreparedEncapsulation {
        to_sparse: EncapsulationSwitch::new(ctx, k.to_sparse)?,
        to_dense: SecretSwitchKey::new(ctx, k.to_dense)?,
    })
}

impl HeldKeys {
    /// Every key of `keys`, checked against `ctx` and prepared now.
    pub(crate) fn eager(ctx: &Context, keys: EvaluationKeys) -> Result<Self, Error> {
        let relin = keys.relin.map(|k| relin_entry(ctx, k).map(Slot::loaded)).transpose()?;
        let galois = keys
            .galois
            .into_iter()
            .map(|(g, k)| Ok((g, Slot::loaded(galois_entry(ctx, g, k)?))))
            .collect::<Result<_, Error>>()?;
        let encapsulation = keys.encapsulation.map(|k| prepare_encapsulation(ctx, k).map(Slot::loaded)).transpose()?;
        Ok(HeldKeys { store: None, relin, galois, encapsulation })
    }

    /// The keys `store` lists, each loaded and checked when first used.
    pub(crate) fn on_demand(store: Arc<dyn KeyStore>) -> Self {
        let list = store.contents();
        HeldKeys {
            relin: list.relinearization.then(Slot::empty),
            galois: list.galois.into_iter().map(|g| (g, Slot::empty())).collect(),
            encapsulation: list.encapsulation.then(Slot::empty),
            store: Some(store),
        }
    }

    fn store(&self) -> Result<&Arc<dyn KeyStore>, Error> {
        // An eager set has every slot loaded, so only an on-demand set ever loads.
        self.store.as_ref().ok_or(Error::InvalidArgument("a key was released without a store to reload it from"))
    }

    pub(crate) fn relin(&self, ctx: &Context) -> Result<Arc<KeyEntry>, Error> {
        let slot = self.relin.as_ref().ok_or(Error::MissingRelinearizationKey)?;
        slot.get(|| relin_entry(ctx, self.store()?.relinearization()?))
    }

    /// The key of Galois element `g`, if one is held.
    pub(crate) fn galois(&self, ctx: &Context, g: u64) -> Option<Result<Arc<KeyEntry>, Error>> {
        let slot = self.galois.get(&g)?;
        Some(slot.get(|| galois_entry(ctx, g, self.store()?.galois(g)?)))
    }

    pub(crate) fn encapsulation(&self, ctx: &Context) -> Result<Arc<PreparedEncapsulation>, Error> {
        let slot = self.encapsulation.as_ref().ok_or(Error::MissingEncapsulationKeys)?;
        slot.get(|| prepare_encapsulation(ctx, self.store()?.encapsulation()?))
    }

    pub(crate) fn has_relin(&self) -> bool {
        self.relin.is_some()
    }

    pub(crate) fn has_galois(&self, g: u64) -> bool {
        self.galois.contains_key(&g)
    }

    pub(crate) fn has_encapsulation(&self) -> bool {
        self.encapsulation.is_some()
    }

    pub(crate) fn galois_elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.galois.keys().copied()
    }

    /// Switching keys in memory now.
    pub(crate) fn loaded(&self) -> Vec<Arc<KeyEntry>> {
        self.relin.iter().chain(self.galois.values()).filter_map(Slot::peek).collect()
    }

    /// Drops every loaded key (when they can be loaded again from a store).
    pub(crate) fn release(&self) {
        if self.store.is_some() {
            self.relin.iter().chain(self.galois.values()).for_each(Slot::clear);
            self.encapsulation.iter().for_each(Slot::clear);
        }
    }
}

impl Evaluator {
    /// Bootstrapping's encapsulation pair, prepared (loaded from the store on first use).
    pub fn encapsulation_keys(&self) -> Result<Arc<PreparedEncapsulation>, Error> {
        self.keys.encapsulation(&self.ctx)
    }

    /// Whether the keys include bootstrapping's encapsulation pair.
    pub fn has_encapsulation_keys(&self) -> bool {
        self.keys.has_encapsulation()
    }

    /// Drops every key loaded from a key store (they are loaded again when next used); keys
    /// given in memory to [`Evaluator::new`] stay.
    pub fn release_keys(&self) {
        self.keys.release();
    }
}
