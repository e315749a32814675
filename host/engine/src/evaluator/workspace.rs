//! Scratch buffers for key switching and rescaling, pooled so that no operation allocates them
//! again: an operation takes a workspace from the pool and gives it back when done. Operations
//! running in parallel on independent ciphertexts each take their own.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Every scratch buffer of one key switch, sized for the top level (limbs back to back).
pub(crate) struct Workspace {
    /// Phase-1 values of the basis extension (ModUp), one per Q limb.
    pub y: Vec<u64>,
    /// The extended digits, limb-major: digit `j` of global limb `i` (Q ∪ P) at
    /// `(i * dnum + j) * n`; a digit's own limbs are not written (read from the input instead).
    pub ext: Vec<u64>,
    /// The P limbs of the two accumulators of the key inner product (the Q limbs are finished
    /// straight into ModDown and never stored).
    pub acc: Vec<u64>,
    /// Phase-1 values of the ModDown basis conversion, one per P limb of each accumulator.
    pub yp: Vec<u64>,
    /// Coefficient-form scratch: the INTT of the input (ModUp), the converted P parts (ModDown),
    /// rescaling temporaries. `2 * |Q|` limbs.
    pub conv: Vec<u64>,
    /// One more polynomial over Q: the third tensor polynomial of a product, a monomial.
    pub tmp: Vec<u64>,
    /// ModDown's rounding correction: the number of times `P` to subtract, per coefficient of
    /// each accumulator.
    pub v: Vec<u64>,
}

/// Buffer sizes (in limbs) for a parameter set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub n: usize,
    pub q_len: usize,
    pub p_len: usize,
    pub dnum: usize,
}

impl Workspace {
    fn new(d: Dims) -> Self {
        let qp = d.q_len + d.p_len;
        // Zeroed allocations map pages lazily: a buffer an operation never touches costs nothing.
        Workspace {
            y: vec![0; d.q_len * d.n],
            ext: vec![0; d.dnum * qp * d.n],
            acc: vec![0; 2 * d.p_len * d.n],
            yp: vec![0; 2 * d.p_len * d.n],
            conv: vec![0; 2 * d.q_len * d.n],
            tmp: vec![0; d.q_len * d.n],
            v: vec![0; 2 * d.n],
        }
    }
}

/// A pool of workspaces.
pub(crate) struct WorkspacePool {
    dims: Dims,
    free: Mutex<Vec<Workspace>>,
}

impl WorkspacePool {
    pub(crate) fn new(dims: Dims) -> Self {
        WorkspacePool { dims, free: Mutex::new(Vec::new()) }
    }

    /// A workspace, from the pool if one is free.
    pub(crate) fn get(&self) -> WorkspaceGuard<'_> {
        let ws = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        WorkspaceGuard { pool: self, ws: Some(ws.unwrap_or_else(|| Workspace::new(self.dims))) }
    }

    /// Drops every pooled workspace (to give memory back after a burst of parallel work).
    pub(crate) fn clear(&self) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A workspace on loan; returns to the pool when dropped.
pub(crate) struct WorkspaceGuard<'a> {
    pool: &'a WorkspacePool,
    ws: Option<Workspace>,
}

impl Deref for WorkspaceGuard<'_> {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        // Some from construction until drop.
        self.ws.as_ref().expect("workspace present until drop")
    }
}

impl DerefMut for WorkspaceGuard<'_> {
    fn deref_mut(&mut self) -> &mut Workspace {
        self.ws.as_mut().expect("workspace present until drop")
    }
}

impl Drop for WorkspaceGuard<'_> {
    fn drop(&mut self) {
        if let Some(ws) = self.ws.take() {
            self.pool.free.lock().unwrap_or_else(|e| e.into_inner()).push(ws);
        }
    }
}
