//! Every wire decoder of the core on arbitrary bytes: no panic, no abort, and never more
//! allocated than the limit (a counting allocator measures each execution).
#![no_main]

#[path = "../../tests/common/alloc.rs"]
#[allow(dead_code)]
mod alloc;
#[path = "../../tests/common/fixup.rs"]
mod fixup;
#[path = "../../tests/common/records.rs"]
#[allow(dead_code)]
mod records;
#[path = "../src/state.rs"]
mod state;

use hetune_core::wire::read_object;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static STATE: state::State = state::State::new();
}

fuzz_target!(|data: &[u8]| {
    if data.len() < state::PREFIX {
        return;
    }
    STATE.with(|s| {
        let mut rec = data[state::PREFIX..].to_vec();
        if data[1] & 1 == 1 {
            fixup::fix(&mut rec, data[1] & 2 == 2, Some(s.ctx.fingerprint()));
        }
        let which = data[0] as usize % (s.records.len() + 1);
        let (_result, peak) = alloc::peak_of(|| match s.records.get(which) {
            Some(r) => (r.decode)(&rec, &s.limits),
            None => read_object(&mut rec.as_slice(), s.ctx, &s.limits).map(drop),
        });
        assert!(peak <= s.limits.max_bytes, "reader {which} allocated {peak} > {}", s.limits.max_bytes);
    });
});
