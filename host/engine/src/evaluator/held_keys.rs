//! The keys an evaluator holds: prepared from an [`EvaluationKeys`] set up front, or from a
//! [`KeyStore`] when first used (and dropped again by [`Evaluator::release_keys`], or, with a
//! memory budget, the least recently used first when a load would exceed it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// A key held but perhaps not loaded, with the tick of its last use.
struct Slot<T> {
    value: Mutex<Option<Arc<T>>>,
    used: AtomicU64,
    /// Whether the slot has held its value before (a load now is a reload).
    loaded_once: AtomicBool,
}

impl<T> Slot<T> {
    fn loaded(value: T) -> Self {
        Slot { value: Mutex::new(Some(Arc::new(value))), used: AtomicU64::new(0), loaded_once: AtomicBool::new(true) }
    }

    fn empty() -> Self {
        Slot { value: Mutex::new(None), used: AtomicU64::new(0), loaded_once: AtomicBool::new(false) }
    }

    /// The value, loading it with `load` if it is not in memory; `tick` marks the use. Returns
    /// whether it was loaded now.
    fn get(&self, tick: u64, load: impl FnOnce() -> Result<T, Error>) -> Result<(Arc<T>, bool), Error> {
        self.used.store(tick, Ordering::Relaxed);
        let mut v = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = v.as_ref() {
            return Ok((x.clone(), false));
        }
        let x = Arc::new(load()?);
        *v = Some(x.clone());
        Ok((x, true))
    }

    fn peek(&self) -> Option<Arc<T>> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn clear(&self) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Drops the value unless someone holds it now; whether it was dropped.
    fn evict(&self) -> bool {
        let mut v = self.value.lock().unwrap_or_else(|e| e.into_inner());
        match v.as_ref() {
            Some(x) if Arc::strong_count(x) == 1 => {
                *v = None;
                true
            }
            _ => false,
        }
    }
}

/// A memory budget for the switching keys loaded from a store.
struct Budget {
    /// Bytes one switching key takes in memory once used (both halves over Q ∪ P, and a Galois
    /// key's permutation).
    key_bytes: usize,
    /// Most keys in memory at once (at least 1).
    max_keys: usize,
    /// Serialises evictions (never held together with a slot's lock).
    evicting: Mutex<()>,
    /// Keys loaded again after an eviction or a release (a measure of the budget's cost).
    reloads: AtomicU64,
    /// Switching keys in memory now.
    held: AtomicUsize,
}

/// The evaluator's keys.
pub(crate) struct HeldKeys {
    store: Option<Arc<dyn KeyStore>>,
    relin: Option<Slot<KeyEntry>>,
    galois: BTreeMap<u64, Slot<KeyEntry>>,
    encapsulation: Option<Slot<PreparedEncapsulation>>,
    budget: Option<Budget>,
    clock: AtomicU64,
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
        Ok(HeldKeys { store: None, relin, galois, encapsulation, budget: None, clock: AtomicU64::new(0) })
    }

    /// The keys `store` lists, each loaded and checked when first used.
    pub(crate) fn on_demand(store: Arc<dyn KeyStore>) -> Self {
        let list = store.contents();
        HeldKeys {
            relin: list.relinearization.then(Slot::empty),
            galois: list.galois.into_iter().map(|g| (g, Slot::empty())).collect(),
            encapsulation: list.encapsulation.then(Slot::empty),
            store: Some(store),
            budget: None,
            clock: AtomicU64::new(0),
        }
    }

    /// The keys `store` lists, loaded when used, with at most about `max_bytes` of switching keys
    /// in memory: when a load would exceed it, the least recently used keys not in use are
    /// dropped (and loaded again from the store when next needed). At least one key is always
    /// held, whatever the budget; bootstrapping's encapsulation pair is not counted.
    pub(crate) fn on_demand_within(ctx: &Context, store: Arc<dyn KeyStore>, max_bytes: usize) -> Self {
        let n = ctx.n();
        let key_bytes = 2 * ctx.params().dnum() * ctx.qp().len() * n * 8 + n * 4;
        let mut keys = Self::on_demand(store);
        keys.budget = Some(Budget {
            key_bytes,
            max_keys: (max_bytes / key_bytes).max(1),
            evicting: Mutex::new(()),
            reloads: AtomicU64::new(0),
            held: AtomicUsize::new(0),
        });
        keys
    }

    fn switching_slots(&self) -> impl Iterator<Item = &Slot<KeyEntry>> {
        self.relin.iter().chain(self.galois.values())
    }

    /// A switching key from `slot`, evicting others first if loading it overran the budget.
    fn switching(
        &self,
        slot: &Slot<KeyEntry>,
        load: impl FnOnce() -> Result<KeyEntry, Error>,
    ) -> Result<Arc<KeyEntry>, Error> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        let (key, loaded) = slot.get(tick, load)?;
        if loaded {
            // A slot that held its key before is loading it again (after an eviction or a release).
            let again = slot.loaded_once.swap(true, Ordering::Relaxed);
            if let Some(b) = self.budget.as_ref() {
                b.held.fetch_add(1, Ordering::Relaxed);
                if again {
                    b.reloads.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Over budget after this load, or still over from keys that were in use when the last
        // load tried (a hoisted rotation holds all of its keys at once).
        if let Some(b) = self.budget.as_ref().filter(|b| b.held.load(Ordering::Relaxed) > b.max_keys) {
            self.enforce(b);
        }
        Ok(key)
    }

    /// Drops the least recently used keys not in use until at most `max_keys` are held.
    fn enforce(&self, b: &Budget) {
        let _guard = b.evicting.lock().unwrap_or_else(|e| e.into_inner());
        let mut held: Vec<(u64, &Slot<KeyEntry>)> = self
            .switching_slots()
            .filter(|s| s.value.lock().unwrap_or_else(|e| e.into_inner()).is_some())
            .map(|s| (s.used.load(Ordering::Relaxed), s))
            .collect();
        if held.len() <= b.max_keys {
            return;
        }
        held.sort_by_key(|&(t, _)| t);
        let mut excess = held.len() - b.max_keys;
        for (_, s) in held {
            if excess == 0 {
                break;
            }
            if s.evict() {
                excess -= 1;
                b.held.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// `(keys in memory, bytes they take, keys loaded again after an eviction or a release)` for a budgeted
    /// set; `None` without a budget.
    pub(crate) fn budget_use(&self) -> Option<(usize, usize, u64)> {
        let b = self.budget.as_ref()?;
        let held = self.switching_slots().filter(|s| s.peek().is_some()).count();
        Some((held, held * b.key_bytes, b.reloads.load(Ordering::Relaxed)))
    }

    fn store(&self) -> Result<&Arc<dyn KeyStore>, Error> {
        // An eager set has every slot loaded, so only an on-demand set ever loads.
        self.store.as_ref().ok_or(Error::InvalidArgument("a key was released without a store to reload it from"))
    }

    pub(crate) fn relin(&self, ctx: &Context) -> Result<Arc<KeyEntry>, Error> {
        let slot = self.relin.as_ref().ok_or(Error::MissingRelinearizationKey)?;
        self.switching(slot, || relin_entry(ctx, self.store()?.relinearization()?))
    }

    /// The key of Galois element `g`, if one is held.
    pub(crate) fn galois(&self, ctx: &Context, g: u64) -> Option<Result<Arc<KeyEntry>, Error>> {
        let slot = self.galois.get(&g)?;
        Some(self.switching(slot, || galois_entry(ctx, g, self.store()?.galois(g)?)))
    }

    pub(crate) fn encapsulation(&self, ctx: &Context) -> Result<Arc<PreparedEncapsulation>, Error> {
        let slot = self.encapsulation.as_ref().ok_or(Error::MissingEncapsulationKeys)?;
        let tick = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(slot.get(tick, || prepare_encapsulation(ctx, self.store()?.encapsulation()?))?.0)
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
        self.switching_slots().filter_map(Slot::peek).collect()
    }

    /// Drops every loaded key (when they can be loaded again from a store).
    pub(crate) fn release(&self) {
        if self.store.is_some() {
            self.switching_slots().for_each(Slot::clear);
            self.encapsulation.iter().for_each(Slot::clear);
            if let Some(b) = self.budget.as_ref() {
                b.held.store(0, Ordering::Relaxed);
            }
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
