//! cargo-fuzz target `whole_open`: damage a real small store, reopen it, compare with the model
//! of acknowledged commits. Damage kinds: `Damage::CI` (what today's kernel handles), or every
//! kind with `STORMHOLD_FUZZ_ALL_DAMAGE=1`.
#![no_main]

use stormhold_fuzz_targets::whole_open::{self, Damage};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let kinds: &[Damage] =
        if std::env::var_os("STORMHOLD_FUZZ_ALL_DAMAGE").is_some() { &Damage::ALL } else { &Damage::CI };
    whole_open::fuzz(data, kinds);
});
